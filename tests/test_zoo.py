"""The pretrained zoo: complete, small, honest. Every model reloads and its recorded W2 is reproduced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flowscope import zoo
from flowscope.data import DATASETS, make_dataset
from flowscope.evaluation import quality

ENTRIES = zoo.entries()
#: The issue's quality bars: W2 within 1.5x of the floor for the OT path, 2.5x for the diffusion paths.
BAR = {"ot": 1.5, "icfm": 1.5, "vp": 2.5, "ve": 2.5}
#: Models that miss their bar today, with the W2/floor they must still stay under (their recorded ratio
#: + 10%), so that a rebuild can only keep or improve them; see the zoo issue's note.
KNOWN_MISSES = {"rings-ot": 2.8, "rings-vp": 2.8, "rings-ve": 3.5, "pinwheel-ot": 1.76,
                "8gaussians-to-moons-independent": 1.88, "8gaussians-to-moons-ot": 1.8}
N_CHECK = 2000


def test_every_dataset_under_every_path_and_the_coupling_pair() -> None:
    names = {e.name for e in ENTRIES}
    assert names == {s.name for s in zoo.specs()}
    assert {(e.dataset, e.path) for e in ENTRIES if e.source is None} == {
        (d, p) for d in DATASETS for p in ("ot", "vp", "ve")}
    assert {e.coupling for e in ENTRIES if e.source == "8gaussians"} == {"independent", "ot"}


def test_zoo_is_small() -> None:
    size = sum(f.stat().st_size for f in zoo.directory().iterdir() if f.is_file())
    assert size <= 16 * 2**20, f"pretrained/ is {size / 2**20:.1f} MiB"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_recorded_quality_meets_the_bar(entry: zoo.ZooEntry) -> None:
    assert entry.metrics["w2_ratio"] <= KNOWN_MISSES.get(entry.name, BAR[entry.path]), entry.metrics
    for key in ("w2", "w2_floor", "nfe_dopri5", "straightness", "path_energy"):
        assert key in entry.metrics
    if entry.source is None:
        assert "nll" in entry.metrics


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_manifest_w2_is_reproduced(entry: zoo.ZooEntry) -> None:
    """Reload the file and recompute W2 / floor exactly as the build did (solver of record, 2000 points,
    3 draws, seed 0): the figures reproduce to float noise, on this machine and across machines (7 models
    were built on another CPU with another torch). Fewer points would not do: W2 and its floor shrink with
    n at different rates (checkerboard-ve reads 1.90 at n = 2000 and 1.04 at n = 1000).
    """
    flow = zoo.load(entry.name)
    assert flow.info["metrics"] == entry.metrics  # the file and the manifest agree
    recomputed = quality(flow, lambda n, seed: make_dataset(entry.dataset, n, seed), n=N_CHECK, seed=0)
    assert recomputed["w2_ratio"] == pytest.approx(entry.metrics["w2_ratio"], rel=0.01)
    assert recomputed["nfe_dopri5"] == pytest.approx(entry.metrics["nfe_dopri5"], abs=12)
    assert recomputed["w2_ratio"] <= 1.1 * KNOWN_MISSES.get(entry.name, BAR[entry.path])


def test_missing_and_corrupt_models_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "zoo"
    shutil.copytree(zoo.directory(), folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    first, second = ENTRIES[0], ENTRIES[1]
    (folder / first.file).unlink()
    with pytest.raises(zoo.ZooError, match=f"{first.name}.*is missing"):
        zoo.load(first.name, folder)
    (folder / second.file).write_bytes(b"\x00" * 64)
    with pytest.raises(zoo.ZooError, match=f"{second.name}.*is corrupt"):
        zoo.load(second.name, folder)
    with pytest.raises(zoo.ZooError, match="no zoo model named 'unicorn'"):
        zoo.load("unicorn", folder)
    (folder / zoo.MANIFEST).write_text("{not json")
    with pytest.raises(zoo.ZooError, match="malformed manifest"):
        zoo.entries(folder)


def test_ot_path_needs_fewer_evaluations_than_vp_for_most_datasets() -> None:
    """The paper's claim, as measured at build time (dopri5, atol = rtol = 1e-5)."""
    nfe = {(e.dataset, e.path): e.metrics["nfe_dopri5"] for e in ENTRIES if e.source is None}
    fewer = [d for d in DATASETS if nfe[(d, "ot")] < nfe[(d, "vp")]]
    assert len(fewer) > len(DATASETS) / 2, nfe


def test_manifest_is_plain_json() -> None:
    manifest = json.loads((zoo.directory() / zoo.MANIFEST).read_text())
    assert manifest["solver_for_nfe"]["method"] == "dopri5" and manifest["solver_for_nfe"]["atol"] == 1e-5
