"""The explorer's pure plotting and computing functions: figures' traces, arrows, shared axes, fields."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from flowscope import FlowModel, MLPConfig, SolverConfig, TrainConfig, make_path, train
from flowscope.data.datasets import make_dataset, make_labelled
from flowscope.evaluation import metrics
from flowscope.fields import fieldview
from flowscope_ui import compute, plots, trainer, uploads

RNG = np.random.default_rng(0)
BOUNDS: plots.Bounds = ((-2.0, 2.0), (-2.0, 2.0))


@pytest.fixture(scope="module")
def flow() -> FlowModel:
    """A tiny OT model on moons (seconds)."""
    data = torch.from_numpy(make_dataset("moons", 1000, seed=0))
    config = TrainConfig(steps=200, device="cpu")
    return train(data, model=MLPConfig(dim=2, width=32, depth=2), config=config).model


@pytest.fixture(scope="module")
def pair_flow() -> FlowModel:
    """A tiny stored-source (8gaussians -> moons) I-CFM model with OT coupling."""
    data = torch.from_numpy(make_dataset("moons", 1000, seed=0))
    source = torch.from_numpy(make_dataset("8gaussians", 1000, seed=1))
    return train(data, path=make_path("icfm", sigma=0.1), model=MLPConfig(dim=2, width=32, depth=2), source=source,
                 coupling="ot", config=TrainConfig(steps=100, batch_size=128, device="cpu")).model


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
    sweep = plots.sweep_figure([("A", np.array([1, 2]), np.array([0.5, 0.3]))], floors=[("W2 floor", 0.1)])
    assert len(sweep.data) == 1 and sweep.layout.xaxis.type == "log" and sweep.layout.shapes[0].y0 == 0.1
    side = plots.trajectories_side_by_side([traj_ := RNG.normal(size=(4, 6, 2)), traj_], ["A", "B"], BOUNDS)
    assert side.layout.xaxis.range == side.layout.xaxis2.range


def test_bounds_are_square_and_robust() -> None:
    points = np.concatenate([RNG.normal(size=(1000, 2)), [[1e6, 1e6], [np.nan, 0.0]]])
    (x0, x1), (y0, y1) = plots.bounds_of(points)
    assert x1 - x0 == pytest.approx(y1 - y0) and x1 < 10
    assert plots.union_bounds(((0, 1), (0, 1)), ((-1, 0.5), (0, 3))) == ((-1, 1), (0, 3))


def test_fields_are_laid_on_the_views_grid(flow: FlowModel) -> None:
    """The page's arrays are the core's fields on the GRID_N x GRID_N grid, densities exponentiated."""
    data = make_dataset("moons", 600, seed=2)
    support = compute.field_support(flow, data)
    f = compute.fields_at(flow, support, BOUNDS, 0.6, 3, (0.2, -0.1))
    n = compute.GRID_N
    assert f.conditional.shape == f.marginal.shape == f.learned.shape == (n * n, 2)
    assert f.marginal_density.shape == f.error.shape == f.conditional_density.shape == (n, n)
    assert np.allclose(f.x1, data[3], atol=1e-5)
    core = fieldview.fields_at(flow, support, torch.from_numpy(f.points).float(), 0.6, x1_index=3,
                               probe=torch.tensor([0.2, -0.1]))
    assert np.allclose(f.marginal, core.marginal.numpy(), atol=1e-6)
    assert np.allclose(np.log(f.marginal_density.ravel()), core.marginal_log_density.numpy(), atol=1e-5)
    assert f.top_weights.sum() <= 1 + 1e-6 and np.all(np.diff(f.top_weights) <= 0)
    xs, ys, density = compute.density_at(flow, support, BOUNDS, 0.6)
    assert np.allclose(density, f.marginal_density, rtol=1e-5) and xs.shape == ys.shape == (n,)


def test_pairs_fields_and_losses_for_a_stored_source(pair_flow: FlowModel) -> None:
    support = compute.field_support(pair_flow, make_dataset("moons", 800, seed=2))
    assert support.z0 is not None and support.z0.shape == support.z1.shape
    f = compute.fields_at(pair_flow, support, BOUNDS, 0.5, 0, (0.0, 0.0))
    assert np.isfinite(f.marginal).all() and np.isfinite(f.conditional).all() and f.partner is not None
    ts, floor, model = compute.loss_by_t(pair_flow, support)
    assert ts.shape == floor.shape == model.shape and (floor >= 0).all()


def test_source_points_are_shared_between_models(flow: FlowModel) -> None:
    other = train(torch.from_numpy(make_dataset("rings", 500)), path="vp", model=MLPConfig(dim=2, width=8, depth=1),
                  config=TrainConfig(steps=2, device="cpu")).model
    eps_a = flow.normalizer.encode(compute.source_points(flow, 50, 1)) / flow.path.prior_std
    eps_b = other.normalizer.encode(compute.source_points(other, 50, 1)) / other.path.prior_std
    assert torch.allclose(eps_a, eps_b, atol=1e-4)


def test_trajectories_sweep_and_straightness(flow: FlowModel) -> None:
    data = make_dataset("moons", 1000, seed=0)
    traj = compute.trajectories(flow, 64, SolverConfig("euler", steps=10), n_frames=6)
    assert traj.points.shape == (6, 64, 2) and traj.nfe == 10
    sweep = compute.sweep(flow, data, "midpoint", (1, 4), n=100)
    assert list(sweep.nfe) == [2, 8] and sweep.w2.shape == (2,)
    straight, energy = compute.straightness_of(flow, n=64)
    assert straight >= 0 and energy > 0
    quality = compute.w2_with_floor(traj.points[-1], data, 64)
    assert quality.w2 > 0 and quality.w2_floor is not None and quality.w2_floor > 0 and quality.n == 64
    small = compute.w2_with_floor(traj.points[-1], data[:50], 64)  # fewer rows than 2n: half of them per draw
    assert small.n == 25 and small.w2_floor is not None and small.rows == 50 and "25-point" in small.floor_text()


def test_time_grid_is_fine_near_0_and_1_and_clamped() -> None:
    times = compute.time_grid(1.0 - 1e-5)
    steps = np.diff(times)
    assert times[0] == 0.0 and times[-1] == 1.0 - 1e-5 and (steps > 0).all()
    assert steps[:2].max() < 0.02 and steps[-2:].max() < 0.02 and steps.max() == pytest.approx(0.05)
    assert compute.nearest_frame(times, 0.8) == int(np.argmin(np.abs(times - 0.8)))


def _frame_panels(t: float) -> list[plots.Panel]:
    """Two panels whose heatmap and arrows change with t, over static data points."""
    heat = np.full((4, 4), t)
    heat[0, 0] = 1000.0 * t  # one huge value: the colour scale clips it
    static = plots.Markers(np.zeros((3, 2)), "data")  # drawn over the heatmap
    return [plots.Panel(f"a at t = {t:.2f}", heat, "p", arrows=(np.zeros((2, 2)), np.full((2, 2), t + 1)),
                        markers=[static]),
            plots.Panel("b", heat, "e", show_scale=True, clip=0.9)]


def _texts(traces: Any) -> list[str]:
    """Every text drawn by the text traces among `traces` (titles and the colour key's labels)."""
    return [text for trace in traces if trace.type == "scatter" and trace.text is not None for text in trace.text]


def test_animated_panels_move_between_frames_without_a_redraw() -> None:
    times = np.array([0.0, 0.5, 1.0])
    xs = ys = np.linspace(-1, 1, 4)
    bars = [plots.Bars(np.array([0.6, 0.4]) ** (1 + t), ["#1", "#2"], f"weights at {t}") for t in times]
    curves = plots.Curves(np.linspace(0, 1, 5), [("loss", np.array([5.0, 2.0, 1.0, 0.1, 1e-6]), "#000")], "c", "y")
    fig = plots.animated_panels([_frame_panels(t) for t in times], times, xs, ys, BOUNDS, 0.1, active=1, bars=bars,
                                curves=curves)
    assert fig.layout.sliders[0].active == 1 and "a at t = 0.50" in _texts(fig.data)
    assert {trace.type for trace in fig.data} == {"scatter", "bar"}  # no heatmap: frames need no full redraw
    assert all(not step.args[1]["frame"]["redraw"] for step in fig.layout.sliders[0].steps)
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "0.5", "1"]
    static = next(i for i, trace in enumerate(fig.data) if trace.name == "data")  # panel a's data points
    for frame, t in zip(fig.frames, times, strict=True):
        assert len(frame.traces) == len(frame.data) and frame.layout.annotations == ()
        assert f"a at t = {t:.2f}" in _texts(frame.data) and f"weights at {t}" in _texts(frame.data)
        # the data points, drawn over the changing heatmap, come with every frame (so they stay on top) but
        # carry nothing: their points are the figure's
        assert frame.data[frame.traces.index(static)].x is None
        key = [text for text in _texts(frame.data) if text.startswith("e")]  # panel b's colour key, clipped
        assert (t > 0) == ("clipped" in key[0])
    assert fig.layout.annotations[-1].text.startswith("c<br>") and "loss" in fig.layout.annotations[-1].text
    assert not any(trace.showlegend for trace in fig.data)  # the curves' names are in their title
    y_axis = fig.layout.yaxis5  # the curves' log axis: every value shown, a tick per decade over many decades
    assert y_axis.type == "log" and y_axis.range[0] < -6 and y_axis.range[1] > np.log10(5.0)
    assert y_axis.ticktext == ("1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1")
    bar_axis = fig.layout.yaxis4  # one log axis for every frame's bars, the flattest frame's a decade above its floor
    assert bar_axis.type == "log" and bar_axis.range[0] <= np.log10(0.6 ** 2) - 1 and bar_axis.range[1] > 0
    with pytest.raises(ValueError, match="same heatmaps"):
        plots.animated_panels([_frame_panels(0.0), _frame_panels(1.0)[:1] + [plots.Panel("c")]], times[:2], xs, ys,
                              BOUNDS, 0.1)


def test_heat_bands_tile_the_grid_by_value() -> None:
    xs, ys = np.linspace(0.0, 3.0, 4), np.linspace(0.0, 2.0, 3)  # unit cells
    z = np.array([[0.0, 0.0, 1.0, 9.0], [0.0, 5.0, 5.0, np.nan], [2.0, 2.0, 2.0, 100.0]])
    bands = plots.heat_bands(xs, ys, z, 0.0, 10.0, levels=5)

    def cells(x: np.ndarray, y: np.ndarray) -> float:  # total area of a band's rectangles
        boxes = np.stack([x, y], axis=1).reshape(-1, 5, 2)[:, :4]
        return float(sum(np.ptp(b[:, 0]) * np.ptp(b[:, 1]) for b in boxes)) if len(x) else 0.0

    # band k holds [2k, 2k + 2): 0, 1, NaN -> 0; 2 -> 1; 5 -> 2; 9 and the out-of-range 100 -> the last
    assert [cells(*band) for band in bands] == [5.0, 3.0, 2.0, 0.0, 2.0]
    assert len(bands[1][0]) == 5  # the row of three equal cells is one rectangle
    assert plots.slider_labels(np.array([0.0, 0.01, 0.05, 0.1, 0.3, 0.975, 0.99999])) == ["0", "", "", "0.1", "0.3",
                                                                                          "", "1"]


def test_log_axis_ticks_and_histogram_density() -> None:
    axis = plots.log_axis(-1.2, 1.35)
    assert axis["ticktext"] == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    assert plots.log_axis(-4.0, 2.0)["ticktext"] == ["0.0001", "0.001", "0.01", "0.1", "1", "10", "100"]
    xs = ys = np.linspace(-3, 3, 31)
    density = plots.histogram_density(RNG.normal(size=(4000, 2)) * 0.5, xs, ys)
    assert density.shape == (31, 31) and density.sum() * 0.2 * 0.2 == pytest.approx(1.0, abs=1e-9)
    low, high, top = plots.clipped_range(np.array([0.0, 1.0, 2.0, np.inf, 100.0]), 0.5)
    assert (low, high, top) == (0.0, 1.5, 100.0)


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
    # width 128 diverges at lr 1e4 within 30 steps (the recipe's width 64 survives it on moons)
    outcome = trainer.run(make_dataset("moons", 500), trainer.TrainSettings(steps=300, lr=1e4, width=128))
    assert outcome.status == "diverged" and "last good weights" in outcome.message
    assert all(torch.isfinite(p).all() for p in outcome.flow.net.parameters())
    assert torch.get_num_threads() >= 1


def test_solver_failures_are_handled(flow: FlowModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """When dopri5 underflows on a wild field, the core falls back to fixed steps and the explorer says so."""
    from flowscope.solver import sampling

    odeint = sampling.odeint

    def underflowing(*args: Any, method: str = "dopri5", **kwargs: Any) -> Any:
        if method == "dopri5":
            raise AssertionError("underflow in dt 0.0")  # what torchdiffeq raises on a wild field
        return odeint(*args, method=method, **kwargs)

    monkeypatch.setattr(sampling, "odeint", underflowing)
    assert compute.preview_samples(flow, 50).shape == (50, 2)
    result = compute.trajectories(flow, 10, SolverConfig("dopri5"))
    assert result.fallback is not None and "rk4" in result.fallback and result.points.shape[1] == 10
    assert compute.nfe_or_none(flow, SolverConfig("dopri5")) is None
    assert compute.trajectories(flow, 10, SolverConfig("rk4", steps=5)).fallback is None


# --- models of any dimension: projections, slices, marginals -------------------------------------------------


@pytest.fixture(scope="module")
def wine_flow() -> tuple[FlowModel, np.ndarray]:
    """A tiny OT model of the 13-column wine table, and the table (seconds)."""
    data = make_dataset("wine", 500, seed=0)
    config = TrainConfig(steps=60, device="cpu")
    return train(torch.from_numpy(data), model=MLPConfig(dim=13, width=32, depth=2), config=config).model, data


def test_the_slice_view_of_a_2d_model_is_todays_view(flow: FlowModel) -> None:
    """For D = 2 the plane is the data's coordinates: the same numbers as the grid of `fields_at`, exactly."""
    data = make_dataset("moons", 600, seed=2)
    support = compute.field_support(flow, data)
    axes = compute.view_axes(flow, data, None)
    assert axes.identity and axes.key == "c0-1" and axes.titles is None
    assert compute.view_axes(flow, data, ("a", "b")).titles == ("a", "b")
    assert compute.view_bounds(flow, data, axes.projection) == compute.view_bounds(flow, data)
    assert compute.project(axes.projection, data) is data
    through = compute.slice_point(data, support, 3, "mean")
    sliced = compute.fields_on_plane(flow, support, axes.projection, through, BOUNDS, 0.6, 3, (0.2, -0.1))
    today = compute.fields_at(flow, support, BOUNDS, 0.6, 3, (0.2, -0.1))
    for name, value in vars(today).items():
        other = getattr(sliced, name)
        assert (value == other if np.isscalar(value) or value is None else np.array_equal(value, other)), name
    xs, ys, density = compute.density_on_view(flow, support, axes.projection, BOUNDS, 0.6)
    assert np.array_equal(density, compute.density_at(flow, support, BOUNDS, 0.6)[2])


def test_fields_on_a_plane_of_a_13d_model_are_the_cores_in_13_dimensions(
        wine_flow: tuple[FlowModel, np.ndarray]) -> None:
    flow, data = wine_flow
    support = compute.field_support(flow, data)
    axes = compute.view_axes(flow, data, None)
    assert not axes.identity and axes.key == "pca" and axes.titles is not None and axes.titles[0].startswith("PC1")
    bounds = compute.view_bounds(flow, data, axes.projection)
    through = compute.slice_point(data, support, 5, "x1")
    assert np.allclose(through, data[5], atol=1e-6)
    f = compute.fields_on_plane(flow, support, axes.projection, through, bounds, 0.7, 5, (0.3, -0.2))
    n = compute.GRID_N
    assert f.conditional.shape == f.marginal.shape == f.learned.shape == f.points.shape == (n * n, 2)
    assert f.marginal_density.shape == f.error.shape == (n, n) and np.isfinite(f.error).all()
    assert np.allclose(f.probe, (0.3, -0.2), atol=1e-5)  # the probe is a point of the plane
    lifted = axes.projection.plane(torch.from_numpy(through), torch.from_numpy(f.points))
    core = fieldview.fields_at(flow, support, lifted, 0.7, x1_index=5)
    assert np.allclose(f.marginal, axes.projection.project_velocity(core.marginal.double()).numpy(), atol=1e-5)
    assert np.allclose(f.error.ravel(), core.error.numpy(), atol=1e-5)  # |v - u| in all 13 dimensions
    assert np.allclose(np.log(f.marginal_density.ravel()), core.marginal_log_density.numpy(), atol=1e-4)
    assert np.allclose(f.x1, axes.projection.project(torch.from_numpy(data[5]).double()).numpy(), atol=1e-5)
    assert f.x1 == pytest.approx(compute.project(axes.projection, data[5:6])[0], abs=1e-5)
    xs, ys, density = compute.density_on_view(flow, support, axes.projection, bounds, 0.7)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert density.shape == (n, n) and 0.9 < density.sum() * cell <= 1.0 + 1e-6  # the projected p_t, on the view
    coords = compute.view_axes(flow, data, tuple(f"c{j}" for j in range(13)), ("coords", 3, 7))
    assert coords.key == "c3-7" and coords.titles == ("c3", "c7") and not coords.square and axes.square
    (x0, x1), (y0, y1) = compute.view_bounds(flow, data, coords.projection, square=False)
    assert x0 < data[:, 3].min() and x1 > data[:, 3].max() and y0 < data[:, 7].min() and y1 > data[:, 7].max()
    assert compute.view_bounds(flow, data, coords.projection, square=True) != ((x0, x1), (y0, y1))
    assert np.array_equal(compute.project(coords.projection, data[:4]), data[:4, [3, 7]].astype(np.float64))
    with pytest.raises(ValueError, match="two different columns"):
        compute.view_axes(flow, data, None, ("coords", 2, 2))


def test_views_of_data_before_training() -> None:
    points = RNG.normal(size=(300, 5)) * np.array([1.0, 100.0, 1.0, 1.0, 1.0])
    axes = compute.data_axes(points, tuple("abcde"))
    assert axes.key == "pca" and axes.titles is not None and "variance" in axes.titles[0]
    two = compute.data_axes(points[:, :2], ("a", "b"))
    assert two.identity and two.titles == ("a", "b") and compute.data_axes(points[:, :2], None).titles is None


def test_marginal_figures() -> None:
    data, samples = RNG.normal(size=(400, 13)), RNG.normal(size=(300, 13))
    data[:, 4] = samples[:, 4] = 2.0  # a constant column still gets bins
    names = [f"col{j}" for j in range(13)]
    w1 = np.linspace(0, 1, 13)
    grid = plots.marginal_histograms(data, samples, names, w1)
    assert len(grid.data) == 26 and {type(t).__name__ for t in grid.data} == {"Bar"}
    assert [a.text for a in grid.layout.annotations][:2] == ["col0 · W1 0", "col1 · W1 0.0833"]
    assert grid.data[0].xaxis == grid.data[1].xaxis == "x" and grid.data[25].xaxis == "x13"  # overlaid per panel
    assert np.allclose(grid.data[0].x, grid.data[1].x)  # shared bins
    bins = plots.shared_bins(data[:, 4], samples[:, 4])
    assert bins[0] < 2.0 < bins[-1]
    pairs = plots.pair_plot(data, samples, (0, 4, 7), names, w1)
    kinds = [type(t).__name__ for t in pairs.data]
    assert kinds.count("Bar") == 6 and kinds.count("Scatter") == 12
    assert [a.text for a in pairs.layout.annotations] == [f"W1 {w1[j]:.3g}" for j in (0, 4, 7)]
    assert pairs.layout.xaxis7.title.text == "col0" and pairs.layout.yaxis4.title.text == "col4"


def test_training_keeps_columns_data_and_the_chosen_normalisation() -> None:
    data = np.column_stack([RNG.normal(size=2500), 1000 * RNG.normal(size=2500), RNG.normal(size=2500)])
    outcome = trainer.run(data, trainer.TrainSettings(steps=20, width=16, normalize="global"), columns=("p", "q", "r"))
    flow = outcome.flow
    assert flow.info["columns"] == ["p", "q", "r"] and len(set(flow.normalizer.scale)) == 1  # one scale
    assert flow.data is not None and flow.data.shape == (trainer.DATA_SAMPLE_ROWS, 3)
    assert np.isin(flow.data[:, 1].numpy(), data[:, 1].astype(np.float32)).all()  # rows of the data, in its units
    column = trainer.run(data[:100], trainer.TrainSettings(steps=20, width=16)).flow
    assert len(set(column.normalizer.scale)) == 3 and "columns" not in column.info and len(column.data) == 100


def test_arrows_and_axes_of_columns_at_different_scales() -> None:
    """Two columns of different scales are drawn without equal aspect; arrows keep their length on screen."""
    points, vectors = np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 100.0]])
    xs, ys = plots.quiver_segments(points, vectors, length=0.5, units=(1.0, 100.0))
    assert (xs[1], ys[1]) == pytest.approx((0.5, 0.0)) and (xs[7], ys[7]) == pytest.approx((0.0, 50.0))
    plain = plots.quiver_segments(points, vectors, length=0.5)
    assert np.array_equal(plain[0], plots.quiver_segments(points, vectors, 0.5, units=None)[0], equal_nan=True)
    bounds: plots.Bounds = ((0.0, 1.0), (0.0, 100.0))
    grid = np.linspace(0, 1, 3)
    free = plots.panels_figure([plots.Panel("a", arrows=(points, vectors))], grid, grid, bounds, 0.1, equal=False)
    assert free.layout.yaxis.scaleanchor is None
    assert plots.panels_figure([plots.Panel("a")], grid, grid, bounds, 0.1).layout.yaxis.scaleanchor == "x"
    assert plots.flow_animation(RNG.normal(size=(3, 4, 2)), np.linspace(0, 1, 3), bounds,
                                equal=False).layout.yaxis.scaleanchor is None


# --- conditional models: class and guided fields, samples by guidance --------------------------------------


@pytest.fixture(scope="module")
def cond_flow() -> tuple[FlowModel, np.ndarray, np.ndarray]:
    """A tiny conditional OT model of 8gaussians' eight components, its data and their labels (seconds)."""
    labelled = make_labelled("8gaussians", 1600, seed=0)
    config = TrainConfig(steps=200, device="cpu")
    flow = train(torch.from_numpy(labelled.x), model=MLPConfig(dim=2, width=32, depth=2), config=config,
                 labels=torch.from_numpy(labelled.y), label_names=labelled.names).model
    return flow, labelled.x, labelled.y


def test_class_fields_on_the_grid_are_the_cores(cond_flow: tuple[FlowModel, np.ndarray, np.ndarray]) -> None:
    flow, data, labels = cond_flow
    support = compute.field_support(flow, data, labels)
    assert support.labels is not None and len(support.labels) == len(data)
    bounds: plots.Bounds = ((-4.0, 4.0), (-4.0, 4.0))
    f = compute.fields_at(flow, support, bounds, 0.7, 0, (0.5, 0.5), label=2, guidance=2.0)
    assert f.label == 2 and f.guidance == 2.0
    core = fieldview.fields_at(flow, support, torch.from_numpy(f.points).float(), 0.7, x1_index=0,
                               probe=torch.tensor([0.5, 0.5]), label=2, guidance=2.0)
    for mine, theirs in ((f.marginal, core.marginal), (f.guided, core.guided), (f.learned, core.learned),
                         (f.unconditional, core.unconditional)):
        assert np.allclose(mine, theirs.numpy(), atol=1e-6)
    assert np.allclose(f.error.ravel(), core.error.numpy(), atol=1e-6)
    assert np.allclose(np.log(f.marginal_density.ravel()), core.marginal_log_density.numpy(), atol=1e-5)
    assert not np.allclose(f.guided, f.marginal, atol=1e-3)  # w = 2 moves the field off the class field
    plain = compute.fields_at(flow, support, bounds, 0.7, 0, (0.5, 0.5), label=2, guidance=0.0)
    assert np.allclose(plain.guided, plain.marginal, atol=1e-9)  # w = 0: the guided field is the class field
    assert np.allclose(plain.learned, flow.velocity(torch.from_numpy(f.points).float(), torch.full((len(f.points),),
                                                    0.7), label=2).numpy(), atol=1e-6)
    assert not np.allclose(plain.marginal, plain.unconditional, atol=1e-3)  # one class is not all of them
    everything = compute.fields_at(flow, support, bounds, 0.7, 0, (0.5, 0.5))
    assert everything.label is None and np.allclose(everything.guided, everything.marginal)
    assert np.allclose(everything.marginal, plain.unconditional, atol=1e-6)


def test_class_fields_on_a_slice_of_a_13d_model() -> None:
    labelled = make_labelled("wine", 400, seed=0)
    flow = train(torch.from_numpy(labelled.x), model=MLPConfig(dim=13, width=32, depth=2),
                 config=TrainConfig(steps=40, device="cpu"), labels=torch.from_numpy(labelled.y),
                 label_names=labelled.names).model
    support = compute.field_support(flow, labelled.x, labelled.y)
    axes = compute.view_axes(flow, labelled.x, None)
    bounds = compute.view_bounds(flow, labelled.x, axes.projection)
    through = compute.slice_point(labelled.x, support, 0, "mean")
    f = compute.fields_on_plane(flow, support, axes.projection, through, bounds, 0.6, 0, (0.0, 0.0), label=1,
                                guidance=3.0)
    lifted = axes.projection.plane(torch.from_numpy(through), torch.from_numpy(f.points))
    core = fieldview.fields_at(flow, support, lifted, 0.6, label=1, guidance=3.0)
    assert np.allclose(f.guided, axes.projection.project_velocity(core.guided.double()).numpy(), atol=1e-5)
    assert np.allclose(f.error.ravel(), core.error_normalised.numpy(), atol=1e-5)  # all 13 dimensions, normalised
    assert np.isfinite(f.marginal_density).all() and f.guidance == 3.0


def test_class_samples_accuracy_and_their_figures(cond_flow: tuple[FlowModel, np.ndarray, np.ndarray]) -> None:
    flow, data, labels = cond_flow
    runs = []
    for w in (0.0, 3.0):
        samples = compute.class_samples(flow, 200, 5, w)
        accuracy = compute.label_accuracy(flow, samples, 5, data, labels)
        assert samples.shape == (200, 2) and 0.0 <= accuracy <= 1.0
        assert accuracy == metrics.label_accuracy(flow.normalizer.encode(torch.from_numpy(samples)).numpy(), 5,
                                                  flow.normalizer.encode(torch.from_numpy(data).double()).numpy(),
                                                  labels)
        runs.append((w, samples, accuracy))
    assert not np.allclose(runs[0][1], runs[1][1])  # the same noise, another w: other samples
    traj = compute.trajectories(flow, 50, SolverConfig("euler", steps=8), n_frames=3, label=5, guidance=2.0)
    direct = flow.sample(x0=compute.source_points(flow, 50, 0), solver=SolverConfig("euler", steps=8), label=5,
                         guidance=2.0).samples.numpy()
    assert np.allclose(traj.points[-1], direct, atol=1e-6)
    fig = plots.guidance_samples(runs, data, labels, flow.labels, 5, BOUNDS)
    assert [a.text for a in fig.layout.annotations] == [f"w = {w:g} · label accuracy {a:.0%}" for w, _, a in runs]
    assert len(fig.data) == 3 * 2 and fig.layout.xaxis2.matches == "x"  # others, the class, samples per subplot
    assert len(fig.data[0].x) == int((labels != 5).sum()) and len(fig.data[1].x) == int((labels == 5).sum())
    markers = plots.class_markers(data, labels, flow.labels, 5, customdata=np.arange(len(data))[:, None])
    assert [m.name for m in markers] == ["other classes", f"class {flow.labels[5]}"]
    assert len(markers[0].color) == int((labels != 5).sum()) and markers[1].opacity > markers[0].opacity
    assert np.array_equal(markers[1].customdata[:, 0], np.flatnonzero(labels == 5))
    animation = plots.flow_animation(RNG.normal(size=(3, 4, 2)), np.linspace(0, 1, 3), BOUNDS, classes=markers)
    assert all(frame.traces == (3,) for frame in animation.frames)  # the particles after two class overlays
    pair = plots.density_pair(RNG.normal(size=(10, 2)), np.ones((4, 4)), np.arange(4.0), np.arange(4.0), BOUNDS, 0.5,
                              class_name="a", guidance=2.0)
    assert "p_t(x | y = a)" in pair.layout.annotations[1].text and "w = 2" in pair.layout.annotations[0].text


def test_training_with_labels_keeps_the_labels_of_its_data_sample() -> None:
    labelled = make_labelled("moons", 2400, seed=1)
    outcome = trainer.run(labelled.x, trainer.TrainSettings(steps=20, width=16, label_dropout=0.2),
                          labels=labelled.y, label_names=labelled.names)
    flow = outcome.flow
    assert flow.conditional and flow.labels == labelled.names and flow.info["train"]["label_dropout"] == 0.2
    assert flow.data is not None and flow.data_labels is not None and len(flow.data_labels) == len(flow.data)
    rows = {tuple(row): label for row, label in zip(labelled.x.astype(np.float32).tolist(), labelled.y, strict=True)}
    assert all(rows[tuple(row)] == int(label) for row, label in zip(flow.data.tolist(), flow.data_labels, strict=True))
    plain = trainer.run(labelled.x[:100], trainer.TrainSettings(steps=5, width=16)).flow
    assert not plain.conditional and plain.data_labels is None
    from flowscope.data.kept import sample_rows  # the rows the CLI and the zoo keep of the same data

    rows_kept = sample_rows(len(labelled.y), labelled.y)
    assert np.array_equal(flow.data.numpy(), labelled.x[rows_kept].astype(np.float32))


def test_samples_download_as_csv_and_npy() -> None:
    samples = RNG.normal(size=(5, 3)) * 1e4
    text = uploads.samples_csv(samples, ["income", 'food, "net"', "z"]).decode()
    assert text.splitlines()[0] == 'income,"food, ""net""",z' and len(text.splitlines()) == 6
    parsed = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    assert np.allclose(parsed, samples, rtol=1e-6)
    loaded = np.load(io.BytesIO(uploads.samples_npy(samples)), allow_pickle=False)
    assert loaded.dtype == np.float32 and np.allclose(loaded, samples, rtol=1e-6)


def test_the_page_trains_the_core_quick_recipe() -> None:
    """The Train page's defaults are a named core recipe (the CLI's is `recipes.DEFAULT`), not numbers of its own."""
    from flowscope.training import recipes

    settings, quick = trainer.TrainSettings(), recipes.QUICK
    assert trainer.RECIPE is quick and quick.config.steps < recipes.DEFAULT.config.steps
    assert (settings.steps, settings.batch_size, settings.lr) == (quick.config.steps, quick.config.batch_size,
                                                                  quick.config.lr)
    assert (settings.width, settings.depth) == (quick.width, quick.depth) == (recipes.DEFAULT.width,
                                                                              recipes.DEFAULT.depth)
