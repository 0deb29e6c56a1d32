"""What the views compute, with the core's functions: trajectories, exact and learned fields, losses, sweeps.

No Streamlit here: pages call these through the caches of `state`. Inputs and outputs are numpy arrays in
data coordinates. Exact fields are computed in the model's normalised coordinates z = (x - mean) / scale
with the model's own path (what it was trained on), then mapped back: velocities times scale, log-densities
minus d log(scale) (the Jacobian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowscope import FlowModel, SolverConfig
from flowscope.couplings import exact_ot_permutation
from flowscope.fields import (
    cfm_loss_by_t,
    conditional_field_grid,
    conditional_log_density,
    field_error,
    grid_2d,
    irreducible_loss,
    marginal_field,
    marginal_field_pairs,
    posterior_topk,
)
from flowscope.metrics import straightness, w2

from .plots import Bounds

#: Grid of the field and density heatmaps (GRID_N x GRID_N); arrows are drawn on every other node.
GRID_N = 40
#: Most data points the exact fields aggregate over (the marginal field costs O(grid x points)).
FIELD_POINTS = 5000
#: Most (source, data) pairs of a non-Gaussian-source model (the OT coupling solves an n x n assignment).
PAIR_POINTS = 1500
#: Solver of the quick previews (thumbnails, live training previews): adaptive, so stiff paths stay right.
PREVIEW_SOLVER = SolverConfig(method="dopri5", atol=1e-3, rtol=1e-3)


class SolverFailed(RuntimeError):
    """The ODE solver could not integrate a model (e.g. dopri5's step size underflowed on a wild field)."""


@dataclass(frozen=True)
class Trajectories:
    """Particles integrated from the source: positions [T, n, 2] at `times` [T], and the solver's NFE."""

    points: np.ndarray
    times: np.ndarray
    nfe: int


@dataclass(frozen=True)
class FieldsAtT:
    """Everything the Fields page draws at one time t, on a GRID_N x GRID_N grid (data coordinates).

    Attributes:
        t: the time (clamped to the path's t_max).
        xs, ys: grid axes [GRID_N].
        points: grid nodes [GRID_N^2, 2] (x fastest).
        conditional, conditional_density: u_t(x | x1) [M, 2] and p_t(x | x1) [GRID_N, GRID_N].
        marginal, marginal_density: exact u_t(x) [M, 2] and p_t(x) [GRID_N, GRID_N].
        learned: v_theta(x, t) [M, 2].
        error: |v_theta - u_t| [GRID_N, GRID_N].
        x1: the chosen data point [2].
        centre: where p_t(x | x1) is centred at t (mu_t(x1), or the pair's interpolant), if it has one centre [2].
        partner: x1's source partner x0 under an OT coupling, else None [2].
        probe: the probe point [2]; probe_velocity: u_t(probe) [2].
        top_points: data points with the largest posterior weights at the probe [k, 2]; top_weights [k];
            top_indices [k] (indices into the field data).
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


@dataclass(frozen=True)
class Sweep:
    """Sample quality against solver effort: per step count, the NFE and W2 to the data."""

    method: str
    steps: np.ndarray
    nfe: np.ndarray
    w2: np.ndarray


def _tensor(x: np.ndarray) -> Tensor:
    """float32 CPU tensor of an array."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _numpy(x: Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array."""
    return x.detach().cpu().double().numpy()


def decoded(flow: FlowModel, z: Tensor) -> np.ndarray:
    """Normalised-coordinate points back in data coordinates, as numpy."""
    return _numpy(flow.normalizer.decode(z))


def clamp_time(flow: FlowModel, t: float) -> float:
    """t limited to [0, path.t_max] (paths with sigma_1 = 0 stop just before 1)."""
    return float(min(max(t, 0.0), flow.path.t_max))


def same_noise(flow: FlowModel, n: int, seed: int) -> np.ndarray:
    """n source points for `flow` from one seeded standard-normal draw, so that models share their noise.

    Gaussian source: x0 = decode(prior_std * eps) with the same eps for every model; stored source
    samples: the same seeded choice of indices.
    """
    generator = torch.Generator().manual_seed(seed)
    if flow.source is None:
        eps = torch.randn(n, flow.dim, generator=generator)
        return _numpy(flow.normalizer.decode(eps * flow.path.prior_std))
    index = torch.randint(len(flow.source), (n,), generator=generator)
    return _numpy(flow.source.cpu()[index])


def trajectories(flow: FlowModel, n: int, solver: SolverConfig, n_frames: int = 41, seed: int = 0) -> Trajectories:
    """Integrate n particles from the source, keeping n_frames positions from t = 0 to t_max."""
    x0 = _tensor(same_noise(flow, n, seed))
    times = torch.linspace(0.0, flow.path.t_max, n_frames)
    try:
        result = flow.sample(x0=x0, solver=solver, times=times)
    except (AssertionError, RuntimeError) as err:  # torchdiffeq asserts on step-size underflow
        raise SolverFailed(f"{solver.method} could not integrate this model ({err}); its field is too stiff or "
                           "not finite here: try a fixed-step solver") from None
    return Trajectories(points=_numpy(result.trajectory), times=_numpy(result.times), nfe=result.nfe)


def w2_with_floor(samples: np.ndarray, data: np.ndarray, n: int) -> tuple[float, float | None]:
    """W2 of n samples to n data points and its floor (W2 between two disjoint draws of the data), if any."""
    n = min(n, len(samples), len(data))
    finite = bool(np.isfinite(samples[:n]).all())
    distance = w2(samples[:n], data[:n]) if finite else float("inf")
    floor = w2(data[:n], data[n : 2 * n]) if len(data) >= 2 * n else None
    return distance, floor


def view_bounds(flow: FlowModel, data: np.ndarray) -> Bounds:
    """Axes of the 2-D views: the data and the bulk of the source (Gaussian prior up to 2 sigma, capped)."""
    (x0, x1), (y0, y1) = _data_box(data)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = (x1 - x0) / 2
    if flow.source is None:
        spread = 2.0 * flow.path.prior_std * flow.normalizer.scale
        half = max(half, min(spread, 2.5 * half))
    else:
        sx, sy = _data_box(_numpy(flow.source.cpu()))
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


def field_pairs(flow: FlowModel, data: np.ndarray, seed: int = 0) -> tuple[Tensor, Tensor] | None:
    """Coupled (z0, z1) pairs in normalised coordinates for a stored-source model; None for a Gaussian source.

    Pairs follow the model's coupling: a random pairing ("independent") or exact OT on up to PAIR_POINTS.
    """
    if flow.source is None:
        return None
    source = flow.source.cpu().float()
    n = min(PAIR_POINTS, len(source), len(data))
    generator = torch.Generator().manual_seed(seed)
    z0 = flow.normalizer.encode(source[torch.randperm(len(source), generator=generator)[:n]])
    z1 = flow.normalizer.encode(_tensor(data[:n]))
    if flow.coupling in ("ot", "sinkhorn"):
        z0 = z0[exact_ot_permutation(z0, z1)]
    return z0, z1


def fields_at(flow: FlowModel, data: np.ndarray, bounds: Bounds, t: float, x1_index: int,
              probe: tuple[float, float], pairs: tuple[Tensor, Tensor] | None = None, top_k: int = 60) -> FieldsAtT:
    """Conditional, exact marginal and learned fields at time t on the view's grid (see FieldsAtT).

    Gaussian source: the paper's fields over the data (aggregated with posterior weights). Stored source:
    the interpolant's fields over coupled pairs (`pairs`); "conditional" is then conditioned on x1 alone,
    averaging over its partners in the coupling.
    """
    t = clamp_time(flow, t)
    scale, d = flow.normalizer.scale, flow.dim
    grid = grid_2d(bounds[0], bounds[1], GRID_N)
    z_grid = flow.normalizer.encode(grid.points)
    z_probe = flow.normalizer.encode(torch.tensor([probe], dtype=torch.float32))
    log_jac = d * math.log(scale)
    alpha, beta = (float(f(torch.tensor(t, dtype=torch.float64))) for f in (flow.path.alpha, flow.path.beta))
    partner = None
    centre: torch.Tensor | None
    with torch.no_grad():
        if pairs is None:
            z_data = flow.normalizer.encode(_tensor(data[:FIELD_POINTS]))
            index = int(np.clip(x1_index, 0, len(z_data) - 1))
            z1 = z_data[index]
            cond = conditional_field_grid(flow.path, z1, z_grid, t)
            cond_log = conditional_log_density(flow.path, z1, z_grid, t)
            both = marginal_field(flow.path, z_data, torch.cat([z_grid, z_probe]), t)
            top = posterior_topk(flow.path, z_data, z_probe[0], t, top_k)
            top_idx, top_w = top.indices, top.weights
            top_z = z_data[top_idx]
            centre = alpha * z1
        else:
            z0, z_data = pairs
            index = int(np.clip(x1_index, 0, len(z_data) - 1))
            z1 = z_data[index]
            partners = z0 if flow.coupling == "independent" else z0[index : index + 1]
            partner = None if flow.coupling == "independent" else z0[index]
            centre = None if partner is None else alpha * z1 + beta * partner
            cond_field = marginal_field_pairs(flow.path, partners, z1.expand_as(partners), z_grid, t)
            cond, cond_log = cond_field.velocity, cond_field.log_density
            both = marginal_field_pairs(flow.path, z0, z_data, torch.cat([z_grid, z_probe]), t)
            top_idx, top_w = _pair_posterior(flow, z0, z_data, z_probe[0], t, top_k)
            top_z = z_data[top_idx]
        marg, probe_v = both.velocity[:-1], both.velocity[-1]
        learned = flow.velocity(grid.points, torch.full((len(grid.points),), t))
        error = field_error(learned, marg * scale).abs_error
    n = GRID_N
    return FieldsAtT(
        t=t, xs=_numpy(grid.xs), ys=_numpy(grid.ys), points=_numpy(grid.points),
        conditional=_numpy(cond * scale), conditional_density=np.exp(_numpy(cond_log) - log_jac).reshape(n, n),
        marginal=_numpy(marg * scale), marginal_density=np.exp(_numpy(both.log_density[:-1]) - log_jac).reshape(n, n),
        learned=_numpy(learned), error=_numpy(error).reshape(n, n),
        x1=decoded(flow, z1[None])[0], probe=np.asarray(probe, dtype=np.float64),
        centre=None if centre is None else decoded(flow, centre[None])[0],
        partner=None if partner is None else decoded(flow, partner[None])[0],
        probe_velocity=_numpy(probe_v * scale), top_points=_numpy(flow.normalizer.decode(top_z)),
        top_weights=_numpy(top_w), top_indices=top_idx.cpu().numpy(),
    )


def _pair_posterior(flow: FlowModel, z0: Tensor, z1: Tensor, probe: Tensor, t: float, k: int) -> tuple[Tensor, Tensor]:
    """Posterior weights of coupled pairs at a probe: softmax of the interpolant's kernel (noise_std)."""
    tt = torch.tensor(t)
    centres = flow.path.alpha(tt) * z1 + flow.path.beta(tt) * z0
    var = max(flow.path.noise_std**2, 1e-12)
    weights = torch.softmax(-(centres - probe).square().sum(1) / (2 * var), dim=0)
    top = torch.topk(weights, min(k, len(weights)))
    return top.indices, top.values


def loss_by_t(flow: FlowModel, data: np.ndarray, pairs: tuple[Tensor, Tensor] | None, n_times: int = 21,
              n_samples: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, irreducible CFM loss, the model's CFM loss) per t, in normalised units (those of training)."""
    ts = torch.linspace(0.0, flow.path.t_max, n_times)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if pairs is None:
            z_data = flow.normalizer.encode(_tensor(data[:FIELD_POINTS]))
            floor = irreducible_loss(flow.path, z_data, ts, n_samples, generator)
            model = cfm_loss_by_t(flow.latent_velocity, flow.path, z_data, ts, n_samples, generator)
            return _numpy(ts), _numpy(floor), _numpy(model)
        z0, z1 = pairs
        floors, models = [], []
        for t in ts.tolist():
            idx = torch.randint(len(z1), (n_samples,), generator=generator)
            times = torch.full((n_samples,), t)
            sample = flow.path.sample(z0[idx], z1[idx], times, generator)
            exact = marginal_field_pairs(flow.path, z0, z1, sample.x_t, t).velocity
            floors.append(float((sample.u_t - exact).square().sum(1).mean()))
            models.append(float((flow.latent_velocity(sample.x_t, times) - sample.u_t).square().sum(1).mean()))
        return _numpy(ts), np.asarray(floors), np.asarray(models)


def sweep(flow: FlowModel, data: np.ndarray, method: str, steps: tuple[int, ...], n: int = 500,
          seed: int = 0) -> Sweep:
    """W2 to the data and NFE of a fixed-step solver for each number of steps, from the same noise."""
    x0 = _tensor(same_noise(flow, n, seed))
    nfes, distances = [], []
    for k in steps:
        result = flow.sample(x0=x0, solver=SolverConfig(method=method, steps=k))
        nfes.append(result.nfe)
        distances.append(w2_with_floor(_numpy(result.samples), data, n)[0])
    return Sweep(method=method, steps=np.asarray(steps), nfe=np.asarray(nfes), w2=np.asarray(distances))


def nfe_or_none(flow: FlowModel, solver: SolverConfig, n: int = 500, seed: int = 0) -> int | None:
    """The solver's NFE on n particles from the shared noise, or None when it cannot integrate the model."""
    try:
        return trajectories(flow, n, solver, n_frames=2, seed=seed).nfe
    except SolverFailed:
        return None


def straightness_of(flow: FlowModel, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """(straightness, path energy) of the model's own trajectories from the shared noise (rk4, 64 steps)."""
    x0 = _tensor(same_noise(flow, n, seed))
    result = straightness(flow.velocity, x0, torch.linspace(0.0, flow.path.t_max, 65))
    return result.straightness, result.path_energy


def preview_samples(flow: FlowModel, n: int = 600, seed: int = 0) -> np.ndarray:
    """A quick sample of the model (dopri5 at tolerance 1e-3, else rk4) for thumbnails and live previews."""
    x0 = _tensor(same_noise(flow, n, seed))
    with torch.no_grad():
        try:
            return _numpy(flow.sample(x0=x0, solver=PREVIEW_SOLVER).samples)
        except (AssertionError, RuntimeError):  # a wild field (e.g. after divergence): fixed steps never fail
            return _numpy(flow.sample(x0=x0, solver=SolverConfig(method="rk4", steps=50)).samples)


def coarse(points: np.ndarray, vectors: np.ndarray, stride: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-th node of the GRID_N x GRID_N grid along x and y: arrows stay readable, heatmaps stay fine."""
    rows, cols = np.divmod(np.arange(len(points)), GRID_N)
    keep = (rows % stride == stride // 2) & (cols % stride == stride // 2)
    return points[keep], vectors[keep]


def arrow_length(bounds: Bounds, stride: int = 2) -> float:
    """Longest arrow: a bit less than the spacing of the arrows' nodes."""
    return 0.9 * stride * (bounds[0][1] - bounds[0][0]) / (GRID_N - 1)


def density_at(flow: FlowModel, data: np.ndarray, bounds: Bounds, t: float,
               pairs: tuple[Tensor, Tensor] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, exact p_t on the GRID_N x GRID_N grid) of the data under the model's path (data coordinates)."""
    t = clamp_time(flow, t)
    grid = grid_2d(bounds[0], bounds[1], GRID_N)
    z_grid = flow.normalizer.encode(grid.points)
    with torch.no_grad():
        if pairs is None:
            z_data = flow.normalizer.encode(_tensor(data[:FIELD_POINTS]))
            log_p = marginal_field(flow.path, z_data, z_grid, t).log_density
        else:
            log_p = marginal_field_pairs(flow.path, pairs[0], pairs[1], z_grid, t).log_density
    density = np.exp(_numpy(log_p) - flow.dim * math.log(flow.normalizer.scale))
    return _numpy(grid.xs), _numpy(grid.ys), density.reshape(GRID_N, GRID_N)
