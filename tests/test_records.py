"""The typed quality reports: their JSON round trips, the figures stored in the shipped zoo files (written before
the types existed) read back unchanged, and the CLI prints the same display rows that the explorer shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowscope.cli.commands import main
from flowscope.cli.recorded import print_recorded
from flowscope.evaluation.records import (
    ClassesReport,
    ClassReport,
    ImageReport,
    ImageSamples,
    QualityReport,
    format_rows,
    stored_report,
)
from flowscope.io import checkpoint
from flowscope.zoo.manifest import directory

FULL = QualityReport(w2=0.15, w2_floor=0.14, w2_ratio=1.0714, solver="rk4", nfe=40, n=2000, draws=10, mmd=0.001,
                     energy_distance=-0.0002, w1_per_dim=(0.01, 0.02), straightness=1.7, path_energy=2.58, nll=2.37,
                     nll_divergence="exact divergence", min_class_accuracy={0.0: 0.998, 1.0: 1.0},
                     max_class_w2_ratio=1.5155)
IMAGES = ImageReport(n=359, nn_held_out_median=16.5, solver="dopri5", fd_floor=8.15, classifier_accuracy_held_out=0.98,
                     bits_per_dim=2.5, samples=(
                         ImageSamples(0.0, nn_median=15.6, nn_ratio=0.94, fd=8.2, fd_ratio=1.007, accuracy=0.99,
                                      min_class_accuracy=0.97, nfe=200),
                         ImageSamples(1.0, nn_median=14.4, nn_ratio=0.87, fd=17.1, fd_ratio=2.1, accuracy=1.0,
                                      min_class_accuracy=1.0, nfe=210)))


def _pretrained(name: str) -> Path:
    return directory() / f"{name}.safetensors"


def test_reports_survive_their_json_form() -> None:
    for report in (FULL, QualityReport(w2=0.5), IMAGES):
        assert type(report).from_dict(json.loads(json.dumps(report.to_dict()))) == report
    classes = ClassesReport((ClassReport("upper", 10019, {0.0: 0.998, 1.0: 1.0}, QualityReport(w2=0.14, w2_floor=0.09,
                                                                                                 w2_ratio=1.5, n=1000,
                                                                                                 draws=1)),
                             ClassReport("lower", 3)), held_out="fresh draws")
    assert ClassesReport.from_dict(json.loads(json.dumps(classes.to_dict()))) == classes
    assert classes.worst() == ({0.0: 0.998, 1.0: 1.0}, 1.5)


def test_the_stored_summary_keeps_the_figures_of_record() -> None:
    """What a model file stores: W2 figures, path figures and NLL rounded, the NFE named by its solver, the worst
    classes; read back, it is the same report rounded (no sample size, notes or MMD: those are not stored)."""
    stored = FULL.stored()
    assert stored == {"w2": 0.15, "w2_floor": 0.14, "w2_ratio": 1.0714, "straightness": 1.7, "path_energy": 2.58,
                      "nll": 2.37, "nfe_rk4": 40, "min_class_accuracy_w0": 0.998, "min_class_accuracy_w1": 1.0,
                      "max_class_w2_ratio": 1.5155}
    recorded = FULL.recorded()
    assert recorded.nfe == 40 and recorded.solver == "rk4" and recorded.n is None and recorded.mmd is None
    assert recorded.stored() == stored
    assert IMAGES.recorded().nfe == 200 and IMAGES.stored()["nfe_dopri5"] == 200  # the unguided set's, as before


@pytest.mark.parametrize("name", ["moons-ot", "moons-cond", "iris-ot", "8gaussians-to-moons-ot", "digits-ot",
                                  "digits-cond"])
def test_the_zoo_files_figures_read_into_typed_reports(name: str) -> None:
    """The shipped files were written as plain dicts: each reads into its report, which stores exactly the same
    dict again, so the files need no rebuild."""
    info = checkpoint.load(_pretrained(name)).info
    report = stored_report(info["metrics"])
    assert isinstance(report, ImageReport if name.startswith("digits") else QualityReport)
    assert report.stored() == info["metrics"]
    if "class_metrics" in info:
        assert ClassesReport.from_dict(info["class_metrics"]).to_dict() == info["class_metrics"]


def test_old_figures_give_the_zoo_lists_headlines() -> None:
    moons = stored_report(checkpoint.load(_pretrained("moons-ot")).info["metrics"])
    digits = stored_report(checkpoint.load(_pretrained("digits-cond")).info["metrics"])
    assert moons is not None and moons.headline() == "W2/floor 1.05" and moons.nfe == 68
    assert digits is not None and digits.headline() == "FD/floor 1.01" and digits.nfe == 200
    labels = [r.label for r in digits.rows()]
    assert labels[:3] == ["FD / floor, w = 0", "class accuracy, w = 0", "NN / held-out, w = 0"]
    assert "bits per dimension" in labels


def test_the_cli_prints_the_reports_rows_then_the_stored_json(capsys: pytest.CaptureFixture[str]) -> None:
    info = checkpoint.load(_pretrained("moons-cond")).info
    print_recorded(info)
    out = capsys.readouterr().out
    report, classes = QualityReport.from_dict(info["metrics"]), ClassesReport.from_dict(info["class_metrics"])
    assert out.startswith(format_rows(report.rows() + classes.rows()))  # the rows the explorer shows
    assert "W2 / floor" in out and "1.10" in out and "worst class accuracy, w = 1" in out
    *_, summary, per_class = out.strip().splitlines()  # scripts read the stored form off the last lines
    assert json.loads(summary) == info["metrics"] and json.loads(per_class) == info["class_metrics"]


def test_info_still_prints_the_stored_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(_pretrained("moons-ot"))]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["metrics"]["w2_ratio"] == 1.0452 and config["metrics"]["nfe_dopri5"] == 68


def test_zoo_list_prints_each_models_headline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["moons-ot"].endswith("W2/floor 1.05") and lines["digits-ot"].endswith("FD/floor 1.18")
