"""The explorer's pure plotting and computing functions: figures' traces, arrows, shared axes, fields."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from flowscope import FlowModel, MLPConfig, SolverConfig, TrainConfig, make_path, train
from flowscope.data import make_dataset
from flowscope.fields import marginal_field
from flowscope_ui import compute, plots, trainer

RNG = np.random.default_rng(0)
BOUNDS: plots.Bounds = ((-2.0, 2.0), (-2.0, 2.0))


@pytest.fixture(scope="module")
def flow() -> FlowModel:
    """A tiny OT model on moons (seconds)."""
    data = torch.from_numpy(make_dataset("moons", 1000, seed=0))
    config = TrainConfig(steps=200, device="cpu", threads=1)
    return train(data, model=MLPConfig(dim=2, width=32, depth=2), config=config).model


@pytest.fixture(scope="module")
def pair_flow() -> FlowModel:
    """A tiny stored-source (8gaussians -> moons) I-CFM model with OT coupling."""
    data = torch.from_numpy(make_dataset("moons", 1000, seed=0))
    source = torch.from_numpy(make_dataset("8gaussians", 1000, seed=1))
    return train(data, path=make_path("icfm", sigma=0.1), model=MLPConfig(dim=2, width=32, depth=2), source=source,
                 coupling="ot", config=TrainConfig(steps=100, batch_size=128, device="cpu", threads=1)).model


def test_quiver_segments_are_arrows_separated_by_gaps() -> None:
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    vectors = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, -3.0]])
    xs, ys = plots.quiver_segments(points, vectors, length=0.5)
    assert len(xs) == len(ys) == 2 * 6  # the zero vector draws nothing; 6 vertices per arrow
    assert np.isnan(xs[5]) and np.isnan(xs[11])
    assert (xs[7], ys[7]) == pytest.approx((2.0, 1.5))  # norms at or above the 90th percentile: `length`
    assert (xs[1], ys[1]) == pytest.approx((0.5 / 2.8, 0.0))  # shorter in proportion (90th percentile = 2.8)
    shaft = np.hypot(xs[1] - xs[0], ys[1] - ys[0])
    barb = np.hypot(xs[2] - xs[1], ys[2] - ys[1])
    assert barb < shaft


def test_quiver_lengths_are_normalised_and_bounded() -> None:
    points = RNG.normal(size=(200, 2))
    vectors = RNG.normal(size=(200, 2)) * np.logspace(-4, 4, 200)[:, None]
    xs, ys = plots.quiver_segments(points, vectors, length=0.1)
    lengths = np.hypot(xs[1::6] - xs[0::6], ys[1::6] - ys[0::6])
    assert lengths.max() <= 0.1 + 1e-9 and lengths.min() >= 0.025 - 1e-9


def test_panels_share_axis_ranges_and_hold_their_traces() -> None:
    grid = np.linspace(-2, 2, 5)
    heat = np.ones((5, 5))
    arrows = (RNG.normal(size=(10, 2)), RNG.normal(size=(10, 2)))
    data = plots.Markers(RNG.normal(size=(7, 2)), "data", customdata=np.zeros((7, 2)))
    panels = [plots.Panel("a", heat, arrows=arrows, markers=[data]), plots.Panel("b", heat, arrows=arrows),
              plots.Panel("c", None, markers=[data])]
    fig = plots.panels_figure(panels, grid, grid, BOUNDS, arrow_length=0.3)
    kinds = [type(trace).__name__ for trace in fig.data]
    assert kinds == ["Heatmap", "Scatter", "Scatter", "Heatmap", "Scatter", "Scatter"]
    layout = fig.layout
    xranges = {tuple(layout[f"xaxis{s}"].range) for s in ("", "2", "3")}
    yranges = {tuple(layout[f"yaxis{s}"].range) for s in ("", "2", "3")}
    assert xranges == {(-2.0, 2.0)} and yranges == {(-2.0, 2.0)}
    assert layout.xaxis2.matches == "x" and layout.yaxis3.matches == "y"
    assert layout.yaxis2.scaleanchor == "x2"  # equal aspect per panel
    assert np.shape(fig.data[2].customdata) == (7, 2)  # clickable data points carry their index
    assert '"customdata":[[0.0,0.0]' in fig.to_json()  # a plain list, which a click sends back as a list


def test_clicked_customdata_accepts_lists_and_typed_arrays() -> None:
    assert plots.clicked_customdata({"customdata": [0, 194]}) == [0.0, 194.0]
    assert plots.clicked_customdata({"customdata": {"1": 194, "0": 2}}) == [2.0, 194.0]
    assert plots.clicked_customdata({"x": 1.0}) == []


def test_flow_animation_has_frames_play_pause_and_slider() -> None:
    traj = RNG.normal(size=(11, 50, 2))
    fig = plots.flow_animation(traj, np.linspace(0, 1, 11), BOUNDS, data=RNG.normal(size=(20, 2)), n_lines=5)
    assert len(fig.frames) == 11 and all(frame.traces == (2,) for frame in fig.frames)
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "❚❚ Pause"]
    assert len(fig.layout.sliders[0].steps) == 11 and fig.layout.sliders[0].active == 10
    lines = fig.data[1]
    assert np.isnan(np.asarray(lines.x, dtype=float)).sum() == 5  # one gap after each of 5 trajectories
    assert np.allclose(fig.frames[0].data[0].x, traj[0, :, 0], atol=1e-4)


def test_density_pair_and_small_figures() -> None:
    grid = np.linspace(-2, 2, 8)
    fig = plots.density_pair(RNG.normal(size=(100, 2)), np.ones((8, 8)), grid, grid, BOUNDS, 0.5)
    assert [type(t).__name__ for t in fig.data] == ["Histogram2d", "Heatmap"]
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range
    assert len(plots.loss_curve([3.0, 2.0, 1.0] * 50).data) == 2
    assert plots.loss_curve([]).data == ()
    by_t = plots.loss_by_t(np.linspace(0, 1, 5), np.array([2.0, 1.5, 1.0, 0.5, 0.0]), np.full(5, 2.1), t=0.3)
    assert len(by_t.data) == 2 and by_t.layout.yaxis.type == "log"
    assert len(plots.posterior_bars(np.array([0.5, 0.3]), ["#1", "#2"]).data[0].y) == 2
    assert isinstance(plots.thumbnail(RNG.normal(size=(30, 2))), go.Figure)
    sweep = plots.sweep_figure([("A", np.array([1, 2]), np.array([0.5, 0.3]))], floor=0.1)
    assert len(sweep.data) == 1 and sweep.layout.xaxis.type == "log"
    side = plots.trajectories_side_by_side([traj_ := RNG.normal(size=(4, 6, 2)), traj_], ["A", "B"], BOUNDS)
    assert side.layout.xaxis.range == side.layout.xaxis2.range


def test_bounds_are_square_and_robust() -> None:
    points = np.concatenate([RNG.normal(size=(1000, 2)), [[1e6, 1e6], [np.nan, 0.0]]])
    (x0, x1), (y0, y1) = plots.bounds_of(points)
    assert x1 - x0 == pytest.approx(y1 - y0) and x1 < 10
    assert plots.union_bounds(((0, 1), (0, 1)), ((-1, 0.5), (0, 3))) == ((-1, 1), (0, 3))


def test_fields_match_the_core_in_data_coordinates(flow: FlowModel) -> None:
    data = make_dataset("moons", 600, seed=2)
    f = compute.fields_at(flow, data, BOUNDS, 0.6, 3, (0.2, -0.1))
    n = compute.GRID_N
    assert f.conditional.shape == f.marginal.shape == f.learned.shape == (n * n, 2)
    assert f.marginal_density.shape == f.error.shape == (n, n)
    assert np.allclose(f.x1, data[3], atol=1e-5)
    z = flow.normalizer.encode(torch.from_numpy(f.points).float())
    exact = marginal_field(flow.path, flow.normalizer.encode(torch.from_numpy(data)), z, 0.6)
    assert np.allclose(f.marginal, exact.velocity.numpy() * flow.normalizer.scale, atol=1e-4)
    log_p = exact.log_density.numpy() - 2 * np.log(flow.normalizer.scale)
    assert np.allclose(np.log(f.marginal_density.ravel()), log_p, atol=1e-3)
    wide = compute.fields_at(flow, data, ((-5.0, 5.0), (-5.0, 5.0)), 0.4, 3, (0.0, 0.0))
    cell = 10.0 / (n - 1)
    assert wide.conditional_density.sum() * cell**2 == pytest.approx(1.0, abs=0.03)  # a normalised Gaussian
    assert wide.marginal_density.sum() * cell**2 == pytest.approx(1.0, abs=0.03)
    assert f.top_weights.sum() <= 1 + 1e-6 and np.all(np.diff(f.top_weights) <= 0)
    assert np.allclose(f.error, np.linalg.norm(f.learned - f.marginal, axis=1).reshape(n, n), atol=1e-4)


def test_pairs_fields_and_losses_for_a_stored_source(pair_flow: FlowModel) -> None:
    data = make_dataset("moons", 800, seed=2)
    pairs = compute.field_pairs(pair_flow, data)
    assert pairs is not None and pairs[0].shape == pairs[1].shape
    f = compute.fields_at(pair_flow, data, BOUNDS, 0.5, 0, (0.0, 0.0), pairs)
    assert np.isfinite(f.marginal).all() and np.isfinite(f.conditional).all()
    ts, floor, model = compute.loss_by_t(pair_flow, data, pairs, n_times=4, n_samples=64)
    assert ts.shape == floor.shape == model.shape == (4,) and (floor >= 0).all()


def test_loss_by_t_the_model_is_above_the_irreducible_loss(flow: FlowModel) -> None:
    data = make_dataset("moons", 1000, seed=0)
    ts, floor, model = compute.loss_by_t(flow, data, None, n_times=5, n_samples=512)
    assert floor[0] == pytest.approx(2.0, rel=0.15)  # OT at t = 0: the variance of normalised 2-D data
    assert (model >= floor * 0.9).all()


def test_same_noise_is_shared_between_models(flow: FlowModel) -> None:
    other = train(torch.from_numpy(make_dataset("rings", 500)), path="vp", model=MLPConfig(dim=2, width=8, depth=1),
                  config=TrainConfig(steps=2, device="cpu", threads=1)).model
    eps_a = flow.normalizer.encode(torch.from_numpy(compute.same_noise(flow, 50, 1)).float()) / flow.path.prior_std
    eps_b = other.normalizer.encode(torch.from_numpy(compute.same_noise(other, 50, 1)).float()) / other.path.prior_std
    assert torch.allclose(eps_a, eps_b, atol=1e-4)


def test_trajectories_sweep_and_straightness(flow: FlowModel) -> None:
    data = make_dataset("moons", 1000, seed=0)
    traj = compute.trajectories(flow, 64, SolverConfig("euler", steps=10), n_frames=6)
    assert traj.points.shape == (6, 64, 2) and traj.nfe == 10
    sweep = compute.sweep(flow, data, "midpoint", (1, 4), n=100)
    assert list(sweep.nfe) == [2, 8] and sweep.w2.shape == (2,)
    straight, energy = compute.straightness_of(flow, n=64)
    assert straight >= 0 and energy > 0
    distance, floor = compute.w2_with_floor(traj.points[-1], data, 64)
    assert distance > 0 and floor is not None and floor > 0


class _Interrupt(BaseException):
    """Stands in for Streamlit's rerun request raised inside a report."""


def test_training_stops_cleanly_when_the_page_is_interrupted() -> None:
    data = make_dataset("moons", 500, seed=0)

    def report(info: object, model: FlowModel, losses: list[float]) -> None:
        if len(losses) >= 60:
            raise _Interrupt

    outcome = trainer.run(data, trainer.TrainSettings(steps=1000, width=16), report=report, every=20)
    assert outcome.status == "stopped" and outcome.steps_done == 60 and isinstance(outcome.interrupt, _Interrupt)
    assert outcome.flow.info["steps_done"] == 60
    assert torch.isfinite(outcome.flow.sample(10, solver=SolverConfig("euler", steps=4)).samples).all()


def test_training_divergence_keeps_a_finite_model() -> None:
    outcome = trainer.run(make_dataset("moons", 500), trainer.TrainSettings(steps=300, lr=1e4))
    assert outcome.status == "diverged" and "last good weights" in outcome.message
    assert all(torch.isfinite(p).all() for p in outcome.flow.net.parameters())
    assert torch.get_num_threads() >= 1


def test_solver_failures_are_handled(flow: FlowModel) -> None:
    wild = copy.copy(flow)
    original = flow.sample

    def underflowing(*args: Any, solver: SolverConfig = SolverConfig(), **kwargs: Any) -> Any:
        if solver.method == "dopri5":
            raise AssertionError("underflow in dt 0.0")  # what torchdiffeq raises on a wild field
        return original(*args, solver=solver, **kwargs)

    wild.sample = underflowing
    assert compute.preview_samples(wild, 50).shape == (50, 2)  # falls back to fixed steps
    with pytest.raises(compute.SolverFailed, match="try a fixed-step solver"):
        compute.trajectories(wild, 10, SolverConfig("dopri5"))
    assert compute.nfe_or_none(wild, SolverConfig("dopri5")) is None
