"""What the views compute, by calling the core: trajectories, fields on the view's grid, losses, sweeps.

No Streamlit and no maths here: the exact and learned fields come from `flowscope.fields.fieldview` (in data
coordinates), quality from `flowscope.evaluation`, paths metrics from `flowscope.metrics`, 2-D views of
D-dimensional models from `flowscope.projection`; this module lays them on the views' grid (for D > 2, a
plane through a chosen point, spanned by the projection's axes) and hands numpy arrays to the pages, which
call it through the caches of `state`. A 2-D model's view is its data coordinates, exactly as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowscope import FlowModel, SolverConfig
from flowscope.evaluation import metrics
from flowscope.evaluation import report as evaluation
from flowscope.evaluation.metrics import straightness
from flowscope.evaluation.records import SampleQuality
from flowscope.fields import fieldview
from flowscope.fields.fieldview import FIELD_POINTS, FieldSupport, FieldView
from flowscope.fields.projection import Projection, coordinate_projection, pca_projection
from flowscope.maths.grid import Grid2D, grid_2d
from flowscope.maths.normalizer import Normalizer

from .plots import Bounds

__all__ = ["FIELD_POINTS", "GRID_N", "PCA", "TIME_GRID", "FieldsAtT", "Quality", "Sweep", "Trajectories", "ViewAxes",
           "fields_at", "fields_on_plane", "fields_over_t", "field_support", "nearest_frame", "project", "time_grid",
           "view_axes"]

#: Grid of the field and density heatmaps (GRID_N x GRID_N); arrows are drawn on every other node.
GRID_N = 40
#: Solver of the quick previews (thumbnails, live training previews): adaptive, so stiff paths stay right.
PREVIEW_SOLVER = SolverConfig(method="dopri5", atol=1e-3, rtol=1e-3)


#: The times at which the pages' t sliders show their plots (computed once, then moved between in the browser):
#: every 0.05, and finer near 0 and 1, where the fields change fastest (and where VP's field is singular at 1).
TIME_GRID: tuple[float, ...] = (0.0, 0.01, 0.025, *(round(0.05 * k, 2) for k in range(1, 20)), 0.975, 0.99, 1.0)


def time_grid(t_max: float = 1.0) -> np.ndarray:
    """TIME_GRID with its last times clamped to the path's t_max (1 - 1e-5 where the field is singular at 1)."""
    return np.minimum(np.asarray(TIME_GRID, dtype=np.float64), t_max)


def nearest_frame(times: np.ndarray, t: float) -> int:
    """The index of the time in `times` closest to t (the frame a slider opens on)."""
    return int(np.argmin(np.abs(np.asarray(times) - t)))


@dataclass(frozen=True)
class Trajectories:
    """Particles integrated from the source: positions [T, n, 2] at `times` [T], the solver's NFE, and why it fell
    back to fixed steps, if it did (`SampleResult.fallback`)."""

    points: np.ndarray
    times: np.ndarray
    nfe: int
    fallback: str | None = None


@dataclass(frozen=True)
class FieldsAtT:
    """Everything the Fields page draws at one time t, on a GRID_N x GRID_N grid of the view's plane.

    For a 2-D model the plane is the data's own coordinates. For D > 2 it is a slice: the plane through a
    chosen point spanned by the projection's axes; every field is computed in all D dimensions at the
    slice's points, vectors are drawn as their components along the two axes, points by their projection,
    and the densities are those of the D-dimensional p_t at the slice's points.

    Attributes:
        t: the time (clamped to the path's t_max).
        xs, ys: grid axes [GRID_N].
        points: grid nodes [GRID_N^2, 2] (x fastest).
        conditional, conditional_density: u_t(x | x1) [M, 2] and p_t(x | x1) [GRID_N, GRID_N].
        marginal, marginal_density: exact u_t(x) [M, 2] and p_t(x) [GRID_N, GRID_N].
        learned: v_theta(x, t) [M, 2].
        error: |v_theta - u_t| [GRID_N, GRID_N] (in all D dimensions; in normalised units on a slice).
        x1: the chosen data point [2].
        centre: where p_t(x | x1) is centred at t (mu_t(x1), or the pair's interpolant), if it has one centre [2].
        partner: x1's source partner x0 under an OT coupling, else None [2].
        probe: the probe point [2]; probe_velocity: u_t(probe) [2] (its components along the axes).
        top_points: data points with the largest posterior weights at the probe [k, 2]; top_weights [k];
            top_indices [k] (indices into the field data).
        label, guidance: for a conditional model, the class y (index; None: unconditional) and the guidance
            scale w of the fields below and of `marginal`, `learned` and `error`: with a class, `marginal` and
            `marginal_density` are the exact class field u_t(x | y) and p_t(x | y), `learned` is the model's
            guided field v_w = v(x, t, y) + w (v(x, t, y) - v(x, t, none)) and `error` is |v_w - u_w|.
        unconditional: the exact field over every class's points, u_t(x) [M, 2] (= marginal without a class).
        guided: the exact guided field u_w = u_t(x | y) + w (u_t(x | y) - u_t(x)) [M, 2] (= marginal at w = 0).
    """

    t: float
    xs: np.ndarray
    ys: np.ndarray
    points: np.ndarray
    conditional: np.ndarray
    conditional_density: np.ndarray
    marginal: np.ndarray
    marginal_density: np.ndarray
    learned: np.ndarray
    error: np.ndarray
    x1: np.ndarray
    centre: np.ndarray | None
    partner: np.ndarray | None
    probe: np.ndarray
    probe_velocity: np.ndarray
    top_points: np.ndarray
    top_weights: np.ndarray
    top_indices: np.ndarray
    unconditional: np.ndarray
    guided: np.ndarray
    label: int | None = None
    guidance: float = 0.0


@dataclass(frozen=True)
class Sweep:
    """Sample quality against solver effort: per step count, the NFE and W2 to the data."""

    method: str
    steps: np.ndarray
    nfe: np.ndarray
    w2: np.ndarray


def _numpy(x: Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array."""
    return x.detach().cpu().double().numpy()


def source_points(flow: FlowModel, n: int, seed: int) -> Tensor:
    """n starting points of `flow` from one seeded draw, so that models compared side by side share noise."""
    return flow.draw_source(n, torch.Generator().manual_seed(seed)).cpu()


def trajectories(flow: FlowModel, n: int, solver: SolverConfig, n_frames: int = 41, seed: int = 0,
                 label: int | None = None, guidance: float = 0.0) -> Trajectories:
    """Integrate n particles from the source, keeping n_frames positions from t = 0 to t_max; for a
    conditional model, of class `label` at guidance scale w (None: its unconditional field)."""
    x0 = source_points(flow, n, seed)
    times = torch.linspace(0.0, flow.path.t_max, n_frames)
    result = flow.sample(x0=x0, solver=solver, times=times, label=label, guidance=guidance)
    return Trajectories(points=_numpy(result.trajectory), times=_numpy(result.times), nfe=result.nfe,
                        fallback=result.fallback)


# --- 2-D views of a D-dimensional model ------------------------------------------------------------------

#: The choice of the principal axes (the default view of a D > 2 model); ("coords", i, j) picks two columns.
PCA: tuple[str | int, ...] = ("pca",)
#: Source points drawn to size a projected view (the bulk of a Gaussian source, seen through the projection).
BOUNDS_SOURCE_POINTS = 4000


@dataclass(frozen=True)
class ViewAxes:
    """The 2-D view a page draws of a model: the core projection, its cache key and the axis titles.

    Attributes:
        projection: data [..., D] -> plane coordinates [..., 2] (`flowscope.projection`).
        key: names the view in cache and widget keys: "pca", or "c<i>-<j>" for columns i and j.
        titles: the axes' titles, or None for a 2-D model whose columns have no names (drawn as today).
        square: equal aspect on square ranges; False for two columns of a D > 2 model, whose scales may
            differ by orders of magnitude (each axis then spans its own column).
    """

    projection: Projection
    key: str
    titles: tuple[str, str] | None
    square: bool = True

    @property
    def identity(self) -> bool:
        """Whether the view draws points as they are: a 2-D model in its data coordinates."""
        return is_identity(self.projection)


def is_identity(projection: Projection) -> bool:
    """Whether a projection leaves 2-D points as they are (D = 2, columns 0 and 1): today's 2-D views."""
    return (projection.dim == 2 and projection.axes == ((1.0, 0.0), (0.0, 1.0))
            and projection.weights == (1.0, 1.0) and projection.origin == (0.0, 0.0))


def _float64(x: np.ndarray | Tensor) -> Tensor:
    """A float64 CPU tensor of an array or tensor."""
    if isinstance(x, Tensor):
        return x.detach().cpu().double()
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def view_axes(flow: FlowModel, data: np.ndarray, names: tuple[str, ...] | None,
              choice: tuple[str | int, ...] = PCA) -> ViewAxes:
    """The view of a model: its two data coordinates for D = 2; for D > 2 the principal axes of its data
    (fitted in the model's normalised coordinates by the core) or the two columns of choice ("coords", i, j).

    Raises ValueError (with a message naming the problem) for two equal columns, or for principal axes of
    data with fewer than two varying columns.
    """
    dim = flow.dim
    if dim == 2:
        projection = coordinate_projection(2, 0, 1, names)
        return ViewAxes(projection, "c0-1", projection.labels if names is not None else None)
    if choice[0] == "coords":
        first, second = int(choice[1]), int(choice[2])
        projection = coordinate_projection(dim, first, second, names)
        return ViewAxes(projection, f"c{first}-{second}", projection.labels, square=False)
    projection = pca_projection(_float64(data), flow.normalizer)
    return ViewAxes(projection, "pca", projection.labels)


def data_axes(points: np.ndarray, names: tuple[str, ...] | None, normalize: str = "column") -> ViewAxes:
    """A view of data before any model is trained on them: their two columns (d = 2), else their principal
    axes in the coordinates a model would train in (the core's normaliser, per column or one scale), or
    their first two columns when those cannot be fitted (fewer than two varying columns)."""
    dim = points.shape[1]
    if dim > 2:
        try:
            normalizer = Normalizer.fit(_float64(points), per_column=normalize == "column")
            projection = pca_projection(_float64(points), normalizer)
            return ViewAxes(projection, "pca", projection.labels)
        except ValueError:
            pass
    projection = coordinate_projection(dim, 0, 1, names)
    return ViewAxes(projection, "c0-1", projection.labels if names is not None else None)


def project(projection: Projection, points: np.ndarray) -> np.ndarray:
    """Points [..., D] -> their plane coordinates [..., 2]; a 2-D model's points come back as they are."""
    if is_identity(projection):
        return points
    return _numpy(projection.project(_float64(points)))


def view_bounds(flow: FlowModel, data: np.ndarray, projection: Projection | None = None,
                square: bool = True) -> Bounds:
    """Axes of the 2-D views: the data and the bulk of the source (Gaussian prior up to 2 sigma, capped).

    With a projection (D > 2), the same in plane coordinates: the projected data, and the spread of
    projected source points. `square` False: each axis on its own (two columns of different scales).
    """
    if projection is None or is_identity(projection):
        if flow.source is None:
            return _bounds(data, 2.0 * float(flow.source_std().max()), None)
        return _bounds(data, None, _numpy(flow.source.cpu()))
    uv = project(projection, data)
    if flow.source is None:
        spread = 2.0 * project(projection, _numpy(source_points(flow, BOUNDS_SOURCE_POINTS, 0))).std(axis=0)
        if not square:
            return _axis_bounds(uv, spread)
        return _bounds(uv, float(spread.max()), None)
    source = project(projection, _numpy(flow.source.cpu()))
    if not square:
        return _axis_bounds(np.concatenate([uv, source]), np.zeros(2))
    return _bounds(uv, None, source)


def _axis_bounds(data: np.ndarray, spread: np.ndarray) -> Bounds:
    """Each axis on its own: the padded 0.5%..99.5% range of the data, widened to `spread` (capped at 2.5x)."""
    lo = np.quantile(data, 0.005, axis=0)
    hi = np.quantile(data, 0.995, axis=0)
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2, 1e-6) * 1.2
    half = np.maximum(half, np.minimum(spread, 2.5 * half))
    return (float(centre[0] - half[0]), float(centre[0] + half[0])), (float(centre[1] - half[1]),
                                                                      float(centre[1] + half[1]))


def _bounds(data: np.ndarray, spread: float | None, source: np.ndarray | None) -> Bounds:
    """A square around the data, widened to `spread` (capped at 2.5x) or to hold the source's box."""
    (x0, x1), (y0, y1) = _data_box(data)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = (x1 - x0) / 2
    if spread is not None:
        half = max(half, min(spread, 2.5 * half))
    elif source is not None:
        sx, sy = _data_box(source)
        half = max(half, abs(sx[0] - centre[0]), abs(sx[1] - centre[0]), abs(sy[0] - centre[1]),
                   abs(sy[1] - centre[1]))
    return (float(centre[0] - half), float(centre[0] + half)), (float(centre[1] - half), float(centre[1] + half))


def _data_box(points: np.ndarray) -> Bounds:
    """A padded square around the 0.5%..99.5% quantiles of the points."""
    lo = np.quantile(points, 0.005, axis=0)
    hi = np.quantile(points, 0.995, axis=0)
    centre = (lo + hi) / 2
    half = max(float(np.max(hi - lo)) / 2, 1e-6) * 1.2
    return (float(centre[0] - half), float(centre[0] + half)), (float(centre[1] - half), float(centre[1] + half))


def field_support(flow: FlowModel, data: np.ndarray, labels: np.ndarray | None = None) -> FieldSupport:
    """What the model's exact fields average over: up to FIELD_POINTS data points, or its own coupled pairs;
    with `labels` (a conditional model's class per data row), their classes too, for its class fields."""
    return fieldview.field_support(flow, data, labels=labels)


def fields_at(flow: FlowModel, support: FieldSupport, bounds: Bounds, t: float, x1_index: int,
              probe: tuple[float, float], top_k: int = 60, label: int | None = None,
              guidance: float = 0.0) -> FieldsAtT:
    """Conditional, exact marginal and learned fields at time t on the view's grid (see FieldsAtT); for a
    class `label` of a conditional model, its exact class and guided fields at guidance w and the learned
    guided field."""
    grid = grid_2d(bounds[0], bounds[1], GRID_N)
    f = fieldview.fields_at(flow, support, grid.points, t, x1_index=x1_index, probe=torch.tensor(probe),
                            top_k=top_k, label=label, guidance=guidance)
    return _laid(f, grid, _numpy, _numpy)


def slice_point(data: np.ndarray, support: FieldSupport, x1_index: int, through: str) -> np.ndarray:
    """Where a slice passes [D]: the mean of the data ("mean"), or the chosen data point x1 ("x1")."""
    if through == "x1":
        return _numpy(support.x1[int(np.clip(x1_index, 0, len(support) - 1))])
    return np.asarray(data, dtype=np.float64).mean(axis=0)


def fields_on_plane(flow: FlowModel, support: FieldSupport, projection: Projection, through: np.ndarray,
                    bounds: Bounds, t: float, x1_index: int, probe_uv: tuple[float, float],
                    top_k: int = 60, label: int | None = None, guidance: float = 0.0) -> FieldsAtT:
    """The fields at time t on the plane through `through` [D] spanned by the projection's axes (see FieldsAtT).

    The grid of plane coordinates on `bounds` is lifted to D dimensions by `projection.plane`, the core
    computes every field there in all D dimensions, and the results come back in plane coordinates; the
    probe is a point of the plane (its plane coordinates). For a 2-D model this is `fields_at`, unchanged.
    `label`, `guidance`: a conditional model's class fields at guidance w, on the slice alike.
    """
    if is_identity(projection):
        return fields_at(flow, support, bounds, t, x1_index, probe_uv, top_k, label, guidance)
    grid = grid_2d(bounds[0], bounds[1], GRID_N, dtype=torch.float64)
    centre = _float64(through)
    points = projection.plane(centre, grid.points)
    probe = projection.plane(centre, torch.tensor([probe_uv], dtype=torch.float64))[0]
    f = fieldview.fields_at(flow, support, points, t, x1_index=x1_index, probe=probe, top_k=top_k, label=label,
                            guidance=guidance)
    return _laid(f, grid, lambda x: _numpy(projection.project(x.double())),
                 lambda v: _numpy(projection.project_velocity(v.double())), normalised_error=True)


def fields_over_t(flow: FlowModel, support: FieldSupport, projection: Projection, through: np.ndarray,
                  bounds: Bounds, times: np.ndarray, x1_index: int, probe_uv: tuple[float, float], top_k: int = 60,
                  label: int | None = None, guidance: float = 0.0) -> list[FieldsAtT]:
    """`fields_on_plane` at each of `times`: the frames a page's t slider moves between without the server."""
    return [fields_on_plane(flow, support, projection, through, bounds, float(t), x1_index, probe_uv, top_k, label,
                            guidance) for t in times]


def _laid(f: FieldView, grid: Grid2D, point: Callable[[Tensor], np.ndarray],
          arrow: Callable[[Tensor], np.ndarray], normalised_error: bool = False) -> FieldsAtT:
    """The core's fields on a grid as the page's arrays: points by `point`, vectors by `arrow`, densities
    exponentiated and laid out as GRID_N x GRID_N images; the error in data or (slices) normalised units."""
    shape = (GRID_N, GRID_N)
    return FieldsAtT(
        t=f.t, xs=_numpy(grid.xs), ys=_numpy(grid.ys), points=_numpy(grid.points),
        conditional=arrow(f.conditional), conditional_density=np.exp(_numpy(f.conditional_log_density)).reshape(shape),
        marginal=arrow(f.marginal), marginal_density=np.exp(_numpy(f.marginal_log_density)).reshape(shape),
        learned=arrow(f.learned), error=_numpy(f.error_normalised if normalised_error else f.error).reshape(shape),
        x1=point(f.x1),
        centre=None if f.centre is None else point(f.centre), partner=None if f.partner is None else point(f.partner),
        probe=point(f.probe), probe_velocity=arrow(f.probe_velocity), top_points=point(f.posterior_points),
        top_weights=_numpy(f.posterior.weights), top_indices=f.posterior.indices.cpu().numpy(),
        unconditional=arrow(f.unconditional), guided=arrow(f.guided), label=f.label, guidance=f.guidance,
    )


def loss_by_t(flow: FlowModel, support: FieldSupport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, irreducible CFM loss, the model's CFM loss) per t, in normalised units (those of training)."""
    losses = fieldview.loss_by_t(flow, support)
    return _numpy(losses.ts), _numpy(losses.irreducible), _numpy(losses.model)


@dataclass(frozen=True)
class Quality(SampleQuality):
    """The core's W2 with its floor (`evaluation.sample_quality`), and the `rows` of data its draws came from, for
    the captions. With fewer than 2n rows of data, n shrinks to half of them."""

    rows: int = 0

    def floor_text(self) -> str:
        """How the floor was measured, for captions."""
        return (f"W2 between two disjoint {self.n:,}-point draws of the {self.rows:,} data points"
                + (" (half of them each: fewer than twice the requested points)" if 2 * self.n >= self.rows - 1
                   else ""))


def w2_with_floor(samples: np.ndarray, data: np.ndarray, n: int) -> Quality:
    """W2 of n samples to n of the data and its floor from the same draws (`evaluation.sample_quality`)."""
    quality = evaluation.sample_quality(samples, data, n=n, repeats=1)
    return Quality(quality.w2, quality.w2_floor, quality.n, quality.draws, rows=len(data))


def sweep(flow: FlowModel, data: np.ndarray, method: str, steps: tuple[int, ...], n: int = 500,
          seed: int = 0) -> Sweep:
    """W2 to the data and NFE of a fixed-step solver for each number of steps, from the same noise."""
    x0 = source_points(flow, n, seed)
    nfes, distances = [], []
    for k in steps:
        result = flow.sample(x0=x0, solver=SolverConfig(method=method, steps=k))
        nfes.append(result.nfe)
        distances.append(evaluation.w2_to_reference(_numpy(result.samples), data, n=n, repeats=1))
    return Sweep(method=method, steps=np.asarray(steps), nfe=np.asarray(nfes), w2=np.asarray(distances))


def nfe_or_none(flow: FlowModel, solver: SolverConfig, n: int = 500, seed: int = 0) -> int | None:
    """The solver's NFE on n particles from the shared noise, or None when it cannot integrate the model."""
    result = trajectories(flow, n, solver, n_frames=2, seed=seed)
    return None if result.fallback is not None else result.nfe


def straightness_of(flow: FlowModel, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """(straightness, path energy) of the model's own trajectories from the shared noise (rk4, 64 steps)."""
    result = straightness(flow.velocity, source_points(flow, n, seed), t1=flow.path.t_max)
    return result.straightness, result.path_energy


def preview_samples(flow: FlowModel, n: int = 600, seed: int = 0) -> np.ndarray:
    """A quick sample of the model (dopri5 at tolerance 1e-3, else the core's fixed-step fallback) for thumbnails
    and live previews."""
    return _numpy(flow.sample(x0=source_points(flow, n, seed), solver=PREVIEW_SOLVER).samples)


def class_samples(flow: FlowModel, n: int, label: int, guidance: float, seed: int = 0) -> np.ndarray:
    """n samples of class `label` of a conditional model at guidance scale w [n, D], from the seeded noise of
    `source_points` (the same noise for every w, so that side by side only the guidance differs); the
    solver of the previews (dopri5 at tolerance 1e-3, else the core's fixed-step fallback)."""
    x0 = source_points(flow, n, seed)
    return _numpy(flow.sample(x0=x0, solver=PREVIEW_SOLVER, label=label, guidance=guidance).samples)


def label_accuracy(flow: FlowModel, samples: np.ndarray, label: int, data: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose 5 nearest data points are mostly of class `label`, in the model's normalised
    coordinates: the core's one definition (`metrics.model_label_accuracy`), as the CLI and the zoo report it."""
    return metrics.model_label_accuracy(flow, samples, label, data, labels)


def coarse(points: np.ndarray, vectors: np.ndarray, stride: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-th node of the GRID_N x GRID_N grid along x and y: arrows stay readable, heatmaps stay fine."""
    rows, cols = np.divmod(np.arange(len(points)), GRID_N)
    keep = (rows % stride == stride // 2) & (cols % stride == stride // 2)
    return points[keep], vectors[keep]


def arrow_length(bounds: Bounds, stride: int = 2) -> float:
    """Longest arrow: a bit less than the spacing of the arrows' nodes (in units of the horizontal axis)."""
    return 0.9 * stride * (bounds[0][1] - bounds[0][0]) / (GRID_N - 1)


def density_at(flow: FlowModel, support: FieldSupport, bounds: Bounds,
               t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, exact p_t on the GRID_N x GRID_N grid) of the model's field support (data coordinates)."""
    grid = grid_2d(bounds[0], bounds[1], GRID_N)
    log_p = fieldview.marginal_log_density(flow, support, grid.points, t)
    return _numpy(grid.xs), _numpy(grid.ys), np.exp(_numpy(log_p)).reshape(GRID_N, GRID_N)


def density_on_view(flow: FlowModel, support: FieldSupport, projection: Projection, bounds: Bounds,
                    t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, density on the GRID_N x GRID_N grid) of what a histogram of the view's particles estimates.

    For a 2-D model that is the exact p_t (`density_at`); for D > 2, the exact density of the projected
    p_t (`fieldview.projected_log_density`), not a slice.
    """
    if is_identity(projection):
        return density_at(flow, support, bounds, t)
    grid = grid_2d(bounds[0], bounds[1], GRID_N, dtype=torch.float64)
    log_p = fieldview.projected_log_density(flow, support, projection, grid.points, t)
    return _numpy(grid.xs), _numpy(grid.ys), np.exp(_numpy(log_p)).reshape(GRID_N, GRID_N)


def per_dimension_w1(data: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """W1 between the data's and the samples' marginals, one per column [D] (`flowscope.metrics`)."""
    return metrics.per_dimension_w1(data, samples)
