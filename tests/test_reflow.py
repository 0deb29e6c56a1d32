"""Reflow: the coupling (x0, teacher(x0)) is reproducible and index-aligned, a straight flow is a fixed point,
and students keep the teacher's prior, source, labels and name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowscope import FlowModel, MLPConfig, TrainConfig, VelocityMLP, train
from flowscope.cli.commands import main
from flowscope.data.datasets import make_dataset, make_labelled
from flowscope.fields.fieldview import REFLOW_SUPPORT_SOLVER, field_support, fields_at
from flowscope.io import checkpoint
from flowscope.maths.normalizer import Normalizer
from flowscope.maths.paths import make_path
from flowscope.solver.sampling import SolverConfig
from flowscope.training.reflow import PAIR_CHUNK, pair_chunk, reflow, reflow_pairs, reflow_round, student_of

EULER = SolverConfig(method="euler", steps=8)
SHIFT = torch.tensor([1.5, -0.75])


def constant_flow() -> FlowModel:
    """A teacher whose field is the constant c = SHIFT (last layer: zero weights, bias c): its paths are the
    straight lines x0 -> x0 + c, so its pairs are already straight and its field is their rectified field."""
    net = VelocityMLP(MLPConfig(dim=2, width=32, depth=2, fourier_features=0))
    with torch.no_grad():
        last = net.net[-1]
        last.weight.zero_()
        last.bias.copy_(SHIFT)
    return FlowModel(net=net, path=make_path("ot"), normalizer=Normalizer.identity(2))


def grid() -> tuple[torch.Tensor, torch.Tensor]:
    """Points of the prior's bulk at times across [0, 1]."""
    x = torch.cartesian_prod(torch.linspace(-2, 2, 9), torch.linspace(-2, 2, 9))
    return x.repeat(5, 1), torch.linspace(0, 0.99, 5).repeat_interleave(len(x))


def test_pairs_of_a_constant_field_are_straight_and_reflow_keeps_the_field() -> None:
    teacher = constant_flow()
    pairs = reflow_pairs(teacher, 3000, solver=EULER, seed=0)
    torch.testing.assert_close(pairs.x1 - pairs.x0, SHIFT.expand(3000, 2), atol=1e-5, rtol=0)
    x, t = grid()
    warm = reflow_round(teacher, pairs, config=TrainConfig(steps=50, batch_size=256, device="cpu")).model
    # the loss is ~0 at the teacher's weights (float rounding of the pairs only): the student stays there
    torch.testing.assert_close(warm.velocity(x, t), SHIFT.expand(len(x), 2), atol=1e-3, rtol=0)


def test_a_fresh_student_learns_the_straight_field_from_index_aligned_pairs() -> None:
    """From fresh weights the student learns c: only index-aligned pairs give that (pairs re-drawn
    independently would teach the independent coupling's field, which pulls every point towards the mean)."""
    teacher = constant_flow()
    pairs = reflow_pairs(teacher, 4000, solver=EULER, seed=0)
    student = reflow_round(teacher, pairs, warm_start=False,
                           config=TrainConfig(steps=600, batch_size=256, seed=0, device="cpu")).model
    x, t = grid()
    error = (student.velocity(x, t) - SHIFT).norm(dim=1)
    assert float(error.max()) < 0.1 * float(SHIFT.norm()), float(error.max())


def test_the_coupling_is_reproducible_from_its_seed_and_regenerates_by_chunk(small_flow: FlowModel) -> None:
    n = PAIR_CHUNK + 500
    first = reflow_pairs(small_flow, n, solver=EULER, seed=3)
    again = reflow_pairs(small_flow, n, solver=EULER, seed=3)
    other = reflow_pairs(small_flow, n, solver=EULER, seed=4)
    assert torch.equal(first.x0, again.x0) and torch.equal(first.x1, again.x1)
    assert not torch.allclose(first.x0, other.x0)
    z0, z1, labels, _ = pair_chunk(small_flow, n, 1, solver=EULER, seed=3)
    assert labels is None and len(z0) == 500
    torch.testing.assert_close(small_flow.normalizer.decode(z1), first.x1[PAIR_CHUNK:])
    # each pair is the teacher's own ODE solution from its x0
    torch.testing.assert_close(small_flow.sample(x0=first.x0[:300], solver=EULER).samples, first.x1[:300],
                               atol=1e-5, rtol=1e-5)


def test_the_student_draws_the_teachers_noise_even_for_a_wide_prior(moons_ve: FlowModel) -> None:
    """VE's prior is N(0, smax^2 I) in the teacher's coordinates: the student's normalisation absorbs smax,
    so its own N(0, I) is the same distribution (the same per-column std in data coordinates)."""
    student = student_of(moons_ve)
    assert moons_ve.path.prior_std > 2 and student.path.prior_std == 1
    torch.testing.assert_close(student.source_std(), moons_ve.source_std())
    pairs = reflow_pairs(moons_ve, 2000, solver=EULER, seed=0)
    torch.testing.assert_close(pairs.x0.std(0), moons_ve.source_std().float(), rtol=0.05, atol=0)


@pytest.fixture(scope="module")
def moons_ve() -> FlowModel:
    """A barely trained VE model (only its prior matters here)."""
    return train(torch.from_numpy(make_dataset("moons", 500, 0)), path="ve", model=MLPConfig(dim=2, width=16),
                 config=TrainConfig(steps=5, batch_size=64, device="cpu")).model


def test_a_source_teachers_pairs_start_at_its_source_and_the_student_keeps_it() -> None:
    data = torch.from_numpy(make_dataset("moons", 600, 0))
    source = torch.from_numpy(make_dataset("8gaussians", 600, 1))
    teacher = train(data, path=make_path("icfm", sigma=0.05), source=source, model=MLPConfig(dim=2, width=16),
                    config=TrainConfig(steps=20, batch_size=64, device="cpu")).model
    pairs = reflow_pairs(teacher, 500, solver=EULER, seed=0)
    distance = torch.cdist(pairs.x0, teacher.source, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert float(distance.max()) < 1e-5  # every x0 is one of the stored source points
    student = student_of(teacher)
    assert student.source is not None and torch.equal(student.source, teacher.source)
    # its exact fields average over its own coupling: each source sample with the end point of its ODE
    assert student.path.noise_std == teacher.path.noise_std > 0
    support = field_support(student, data.numpy())
    assert support.z0 is not None
    ends = student.sample(x0=student.normalizer.decode(support.z0), solver=REFLOW_SUPPORT_SOLVER).samples
    torch.testing.assert_close(support.x1, ends, atol=1e-4, rtol=1e-4)
    view = fields_at(student, support, torch.randn(20, 2), 0.5)
    assert bool(torch.isfinite(view.marginal).all())


def test_checkpoints_keep_the_teacher_its_solver_and_the_round(small_flow: FlowModel, tmp_path: Path) -> None:
    result = reflow(small_flow, pairs=600, rounds=2, solver=EULER, seed=5, teacher_name="tiny-moons",
                    config=TrainConfig(steps=20, batch_size=128, device="cpu"))
    assert len(result.rounds) == 2
    loaded = checkpoint.load(checkpoint.save(result.model, tmp_path / "student.safetensors"))
    record = loaded.info["reflow"]
    assert loaded.coupling == "reflow" and record["round"] == 2 and record["first_teacher"] == "tiny-moons"
    assert record["teacher"] == "tiny-moons reflow 1" and record["seed"] == 6 and record["pairs"] == 600
    assert SolverConfig(**record["solver"]) == EULER
    assert loaded.path.name == "ot" and loaded.path.params()["sigma_min"] == 0.0


@pytest.mark.slow
def test_conditional_reflow_draws_pairs_per_class_and_keeps_the_labels(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    labelled = make_labelled("8gaussians", 800, 0)
    teacher = train(torch.from_numpy(labelled.x), path="ot", model=MLPConfig(dim=2, width=32),
                    config=TrainConfig(steps=30, batch_size=128, device="cpu"),
                    labels=torch.from_numpy(labelled.y), label_names=labelled.names).model
    pairs = reflow_pairs(teacher, 900, solver=EULER, seed=0, guidance=1.0)
    assert pairs.labels is not None and set(pairs.labels.tolist()) == set(range(len(teacher.labels)))
    rows = (pairs.labels == 3).nonzero().squeeze(1)
    expected = teacher.sample(x0=pairs.x0[rows], solver=EULER, label=3, guidance=1.0).samples
    torch.testing.assert_close(pairs.x1[rows], expected, atol=1e-5, rtol=1e-5)
    student = reflow_round(teacher, pairs, config=TrainConfig(steps=10, batch_size=128, device="cpu")).model
    assert student.labels == teacher.labels and student.net.config.num_classes == len(teacher.labels)
    assert student.info["reflow"]["guidance"] == 1.0
    assert student.sample(20, label=3, solver=EULER).samples.shape == (20, 2)
    # the CLI: guided pairs, a labelled student, and straightness measured on the class fields
    out = tmp_path / "student.safetensors"
    assert main(["reflow", str(checkpoint.save(teacher, tmp_path / "cond.safetensors")), "--pairs", "600", "--steps",
                 "5", "--solver", "euler", "--solver-steps", "4", "--guidance", "1", "--quiet", "--out", str(out)]) == 0
    assert "straightness (mean over classes)" in capsys.readouterr().out
    assert checkpoint.load(out).labels == teacher.labels


@pytest.mark.slow
def test_the_cli_reflows_a_model_file(small_flow: FlowModel, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    teacher = checkpoint.save(small_flow, tmp_path / "teacher.safetensors")
    out = tmp_path / "student.safetensors"
    code = main(["reflow", str(teacher), "--pairs", "800", "--steps", "30", "--solver", "euler", "--solver-steps", "8",
                 "--quiet", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "straightness: teacher" in printed and str(out) in printed
    student = checkpoint.load(out)
    assert student.info["reflow"]["teacher"] == "teacher" and student.info["metrics"]["w2_ratio"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--pairs", "1"], "argument --pairs: must be an integer >= 2, got '1'"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1, got '0'"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0, got 'nan'"),
    (["--out", "x.npy"], "--out must end in .safetensors"),
    (["--guidance", "2"], "--guidance needs a conditional teacher"),
])
def test_cli_errors_name_the_bad_argument(small_flow: FlowModel, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    teacher = checkpoint.save(small_flow, tmp_path / "teacher.safetensors")
    try:
        code = main(["reflow", str(teacher), "--quiet", *args])
    except SystemExit as stop:  # a bad number: argparse's message, before any work
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*reflow*"))


def test_cli_names_a_missing_or_corrupt_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 40)
    for teacher, message in ((tmp_path / "missing.safetensors", "no such model file"),
                             (corrupt, "corrupt.safetensors"), (Path("unicorn"), "no zoo model named 'unicorn'")):
        assert main(["reflow", str(teacher), "--quiet", "--out", str(tmp_path / "s.safetensors")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s.safetensors").exists()
