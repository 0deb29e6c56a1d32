"""The fields of a trained model at a time t, in data coordinates: the one entry point the explorer draws.

Why: a `FlowModel` works in normalised coordinates z = (x - mean) / scale, where the paper's Gaussian
paths are isotropic; its exact fields (`flowscope.fields`) are computed there, over what the model's
training averaged over: the data for a Gaussian source, or (source, data) pairs drawn by the model's own
coupling for a stored source. This module does that once, and maps the results back: velocities by the
normaliser's linear part, log-densities minus its log-Jacobian. The explorer, the benchmarks and the tests
call it instead of redoing any of these steps.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..flow.model import FlowModel
from ..maths.couplings import REFLOW, pair
from ..maths.paths import AffinePath
from ..solver.sampling import SampleResult, SolverConfig, Velocity, integrate
from .exact import (
    MarginalVelocity,
    Posterior,
    cfm_loss_by_t,
    coefficients,
    conditional_field_grid,
    conditional_log_density,
    exact_field,
    field_error,
    irreducible_loss,
    mixture_log_density,
    pair_posterior_topk,
    posterior_topk,
)
from .projection import Projection

__all__ = [
    "FIELD_POINTS",
    "PAIR_POINTS",
    "REFLOW_SUPPORT_SOLVER",
    "VIEW_SIGMA",
    "FieldSupport",
    "FieldView",
    "LossByT",
    "exact_samples",
    "exact_velocity",
    "field_support",
    "fields_at",
    "loss_by_t",
    "marginal_log_density",
    "projected_log_density",
    "view_path",
]

#: Most data points the exact fields aggregate over (the marginal field costs O(queries x points)).
FIELD_POINTS = 5000
#: Most (source, data) pairs of a stored-source model (its OT coupling solves an n x n problem).
PAIR_POINTS = 1500
#: How a reflowed model's support pairs each source point with its own ODE's end point (its coupling).
REFLOW_SUPPORT_SOLVER = SolverConfig(method="rk4", steps=32)
#: The kernel width (normalised units) at which the exact fields of a stored-source model trained with kernel
#: width 0 are drawn: its pairs' kernels are Diracs, so its exact field exists only on the pairs' interpolants;
#: smoothed at this width it is defined everywhere, and close to it where the interpolants are dense.
VIEW_SIGMA = 0.05


@dataclass(frozen=True)
class FieldSupport:
    """What a model's exact fields average over, in its normalised coordinates.

    Attributes:
        z1: data points [N, d].
        z0: for a stored source, z1's coupled source partners [N, d] (row j pairs with z1[j]); None for a
            Gaussian source, whose fields average over the source in closed form.
        x1: the data points in data coordinates [N, d] (what a view draws).
        labels: the class index of each row [N] (a conditional model's data), else None.
        view_sigma: for pairs whose path has no interpolant noise (kernel width 0, where the exact field is a
            sum of Diracs), the kernel width at which the exact fields are drawn instead (VIEW_SIGMA, normalised
            units); None when they are drawn exactly, at the model's own width (`view_path`).
    """

    z1: Tensor
    z0: Tensor | None
    x1: Tensor
    labels: Tensor | None = None
    view_sigma: float | None = None

    def rows_of(self, label: int) -> Tensor:
        """The indices of the rows of class `label` (ValueError when the support has none of it)."""
        if self.labels is None:
            raise ValueError("these data carry no labels: class fields need the class of each point")
        rows = (self.labels == label).nonzero().squeeze(1)
        if len(rows) == 0:
            raise ValueError(f"no data point of class {label} among the {len(self)} points of the field data")
        return rows

    def __len__(self) -> int:
        return int(self.z1.shape[0])


@dataclass(frozen=True)
class FieldView:
    """Every field of a model at time t on query points, in data coordinates.

    Attributes:
        t: the time (clamped to the path's t_max).
        points: the query points [M, d].
        conditional: u_t(x | x1) of the chosen data point [M, d]; for a stored source, conditioned on x1 and
            its coupled partner (OT couplings) or averaged over the sources (independent pairs).
        conditional_log_density: log p_t(x | x1) [M].
        marginal: the exact marginal field u_t(x) [M, d]; marginal_log_density: log p_t(x) [M]. For a class
            y of a conditional model: the exact class field u_t(x | y) over class y's points, and p_t(x | y).
        unconditional: the exact field over all points, u_t(x) [M, d] (= marginal without a class).
        guided: the exact guided field u_t(x | y) + w (u_t(x | y) - u_t(x)) [M, d] (= marginal at w = 0).
        label, guidance: the class index (None: unconditional) and guidance scale w of the fields.
        learned: v_theta(x, t) [M, d], guided like `guided` for a class; error: |learned - guided| [M] in
            data units; error_normalised: the same
            in the model's normalised units (each column divided by its scale), which weighs the columns of
            a table alike where data units let the largest-scale column dominate.
        x1: the chosen data point [d]; x1_index: its row in the support.
        centre: where p_t(x | x1) is centred at t, if it has one centre [d]; partner: x1's source partner
            under an OT coupling, else None [d].
        probe: the probe point [d]; probe_velocity: u_t(probe) [d].
        posterior: the support rows with the largest posterior weights at the probe (indices, weights [k]);
            posterior_points: those rows' data points [k, d].
    """

    t: float
    points: Tensor
    conditional: Tensor
    conditional_log_density: Tensor
    marginal: Tensor
    marginal_log_density: Tensor
    unconditional: Tensor
    guided: Tensor
    label: int | None
    guidance: float
    learned: Tensor
    error: Tensor
    error_normalised: Tensor
    x1: Tensor
    x1_index: int
    centre: Tensor | None
    partner: Tensor | None
    probe: Tensor
    probe_velocity: Tensor
    posterior: Posterior
    posterior_points: Tensor


@dataclass(frozen=True)
class LossByT:
    """Per time t: the irreducible CFM loss and the model's CFM loss (normalised units, those of training)."""

    ts: Tensor
    irreducible: Tensor
    model: Tensor


def _as_tensor(x: Tensor | np.ndarray) -> Tensor:
    """float32 CPU tensor of an array or tensor."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float32)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def field_support(flow: FlowModel, data: Tensor | np.ndarray, *, max_points: int = FIELD_POINTS,
                  max_pairs: int = PAIR_POINTS, seed: int = 0,
                  labels: Tensor | np.ndarray | None = None) -> FieldSupport:
    """The points (or pairs) the exact fields of `flow` average over: the first rows of `data`.

    For a stored source, min(max_pairs, sizes) source samples drawn with `seed` are paired with the data by
    the model's own coupling (`couplings.pair`: random order, exact OT or Sinkhorn), as in training; a reflowed
    model's (its coupling is deterministic) pairs each source sample with the end point of its own ODE.
    `labels` [N]: each data row's class, for a conditional model's class and guided fields.
    """
    points = _as_tensor(data).to(flow.device)
    classes = None if labels is None else torch.as_tensor(labels).long().reshape(-1).to(flow.device)
    if classes is not None and len(classes) != len(points):
        raise ValueError(f"labels: one per data row, got {len(classes)} for {len(points)} rows")
    if flow.source is None:
        x1 = points[:max_points]
        return FieldSupport(z1=flow.normalizer.encode(x1), z0=None, x1=x1,
                            labels=None if classes is None else classes[:max_points])
    source = flow.source.detach().float()
    n = min(max_pairs, len(source), len(points))
    generator = torch.Generator().manual_seed(seed)
    z0 = flow.normalizer.encode(source[torch.randperm(len(source), generator=generator)[:n].to(source.device)])
    x1 = points[:n]
    z1 = flow.normalizer.encode(x1)
    if flow.coupling == REFLOW:  # its coupling: each x0 with its own ODE's end point (what it was trained on)
        z1 = integrate(flow.latent_velocity, z0, t1=flow.path.t_max, solver=REFLOW_SUPPORT_SOLVER).samples
        x1 = flow.normalizer.decode(z1)
    else:
        z0, z1 = pair(z0, z1, flow.coupling)
    view_sigma = VIEW_SIGMA if flow.path.noise_std <= 0 else None
    return FieldSupport(z1=z1, z0=z0, x1=x1, labels=None if classes is None else classes[:n], view_sigma=view_sigma)


def view_path(flow: FlowModel, support: FieldSupport) -> AffinePath:
    """The path whose exact fields a view draws: the model's, or, for pairs trained with kernel width 0, the same
    path with the interpolant noise support.view_sigma (the fields of Diracs cannot be drawn on a grid)."""
    if support.view_sigma is None:
        return flow.path
    smoothed = copy.copy(flow.path)
    smoothed.noise_std = support.view_sigma
    return smoothed


@torch.no_grad()
def marginal_log_density(flow: FlowModel, support: FieldSupport, points: Tensor, t: float) -> Tensor:
    """log p_t(x) of the support under the model's path at data-coordinate points [M, d], shape [M]."""
    t = flow.clamp_time(t)
    z = flow.normalizer.encode(_as_tensor(points).to(support.z1.device))
    log_p = exact_field(view_path(flow, support), support.z1, z, t, source=support.z0).log_density
    return log_p - flow.normalizer.log_det


@torch.no_grad()
def projected_log_density(flow: FlowModel, support: FieldSupport, projection: Projection, uv: Tensor,
                          t: float) -> Tensor:
    """log density of the projection of the exact p_t at plane coordinates uv [M, 2], shape [M].

    The marginal path is a Gaussian mixture in normalised coordinates (components N(alpha_t z1_i, v_t I), or
    the pairs' kernels); a linear map takes each component to a 2-D Gaussian N(b + M c_i, v_t M M^T), so the
    projected density, what a histogram of projected particles estimates, is exact: whitened by the
    Cholesky factor L of M M^T, it is an isotropic mixture, minus log |det L|. For D = 2 and the coordinate
    axes it equals `marginal_log_density`.
    """
    t = flow.clamp_time(t)
    path, norm = view_path(flow, support), flow.normalizer
    z0 = torch.zeros(1, norm.dim, dtype=torch.float64)
    offset = projection.project(norm.decode(z0))[0]  # b: where z = 0 lands
    basis = torch.eye(norm.dim, dtype=torch.float64)
    linear = projection.project_velocity(norm.decode_velocity(basis)).T  # M [2, d]: dz -> duv
    cholesky = torch.linalg.cholesky(linear @ linear.T)
    coef = coefficients(path, t)
    alpha, sigma = coef.alpha, coef.sigma
    z1 = support.z1.double().cpu()
    if support.z0 is None:
        centres, var = alpha * z1, sigma**2 + path.noise_std**2
    else:
        centres, var = alpha * z1 + sigma * support.z0.double().cpu(), path.noise_std**2
    whiten = torch.linalg.inv(cholesky)
    y = (uv.double().cpu() - offset) @ whiten.T
    log_p = mixture_log_density(y, centres @ linear.T @ whiten.T, var)
    return (log_p - torch.log(torch.diagonal(cholesky)).sum()).to(uv.dtype)


@torch.no_grad()
def fields_at(flow: FlowModel, support: FieldSupport, points: Tensor, t: float, *, x1_index: int = 0,
              probe: Tensor | None = None, top_k: int = 60, label: str | int | None = None,
              guidance: float = 0.0) -> FieldView:
    """Conditional, exact marginal and learned fields of `flow` at time t on data-coordinate points (see FieldView).

    Args:
        flow: the model (its path, normalisation, coupling and network).
        support: what the exact fields average over (`field_support`).
        points: query points [M, d] in data coordinates.
        t: time; clamped to [0, path.t_max].
        x1_index: the support row whose conditional field is returned (clipped to the support).
        probe: where the posterior weights and u_t(probe) are reported [d]; defaults to points' mean.
        top_k: how many of the largest posterior weights to return.
        label, guidance: for a conditional model, the class y (name or index) and guidance scale w: the exact
            class field, the exact guided field and the learned guided field (see FieldView); the posterior
            weights are then those over class y's points.
    """
    t = flow.clamp_time(t)
    y = None if label is None else flow.label_index(label)
    norm, path = flow.normalizer, view_path(flow, support)
    queries = _as_tensor(points).to(support.z1.device)
    probe_x = queries.mean(0) if probe is None else _as_tensor(probe).reshape(-1).to(queries.device)
    z = norm.encode(torch.cat([queries, probe_x[None]]))
    index = int(np.clip(x1_index, 0, len(support) - 1))
    z1 = support.z1[index]
    coef = coefficients(path, t)
    alpha, sigma = coef.alpha, coef.sigma
    partner: Tensor | None = None
    if support.z0 is None:
        conditional = conditional_field_grid(path, z1, z[:-1], t)
        conditional_log = conditional_log_density(path, z1, z[:-1], t)
        posterior = posterior_topk(path, support.z1, z[-1], t, top_k)
        centre: Tensor | None = alpha * z1
    else:
        independent = flow.coupling == "independent"
        partners = support.z0 if independent else support.z0[index : index + 1]
        partner = None if independent else support.z0[index]
        centre = None if partner is None else alpha * z1 + sigma * partner
        given_x1 = exact_field(path, z1.expand_as(partners), z[:-1], t, source=partners)
        conditional, conditional_log = given_x1.velocity, given_x1.log_density
        posterior = pair_posterior_topk(path, support.z0, support.z1, z[-1], t, top_k)
    everything = exact_field(path, support.z1, z, t, source=support.z0)
    marginal, guided_z = everything, everything.velocity
    if y is not None:
        rows = support.rows_of(y)
        sources = None if support.z0 is None else support.z0[rows]
        marginal = exact_field(path, support.z1[rows], z, t, source=sources)
        guided_z = marginal.velocity + guidance * (marginal.velocity - everything.velocity)
        within = (posterior_topk(path, support.z1[rows], z[-1], t, top_k) if sources is None
                  else pair_posterior_topk(path, sources, support.z1[rows], z[-1], t, top_k))
        posterior = Posterior(indices=rows[within.indices], weights=within.weights)
    exact = norm.decode_velocity(marginal.velocity)
    guided = norm.decode_velocity(guided_z)
    learned = flow.velocity(queries, torch.full((len(queries),), t, device=queries.device), label=y,
                            guidance=guidance)
    return FieldView(
        t=t, points=queries,
        conditional=norm.decode_velocity(conditional), conditional_log_density=conditional_log - norm.log_det,
        marginal=exact[:-1], marginal_log_density=marginal.log_density[:-1] - norm.log_det,
        unconditional=norm.decode_velocity(everything.velocity[:-1]), guided=guided[:-1], label=y,
        guidance=float(guidance), learned=learned, error=field_error(learned, guided[:-1]).abs_error,
        error_normalised=field_error(norm.encode_velocity(learned), guided_z[:-1]).abs_error,
        x1=support.x1[index], x1_index=index,
        centre=None if centre is None else norm.decode(centre[None])[0],
        partner=None if partner is None else norm.decode(partner[None])[0],
        probe=probe_x, probe_velocity=guided[-1],
        posterior=posterior, posterior_points=support.x1[posterior.indices],
    )


def exact_velocity(flow: FlowModel, support: FieldSupport, *, label: str | int | None = None,
                   guidance: float = 0.0) -> Velocity:
    """The exact marginal field of the support as a velocity in the model's normalised coordinates: over all
    points, or for a class y of a conditional model the class field u_t(z | y), guided by w as the learned field
    is (u_t(z | y) + w (u_t(z | y) - u_t(z)))."""
    path = view_path(flow, support)
    everything = MarginalVelocity(path, support.z1, source=support.z0)
    if label is None:
        return everything
    rows = support.rows_of(flow.label_index(label))
    klass = MarginalVelocity(path, support.z1[rows], source=None if support.z0 is None else support.z0[rows])
    if guidance == 0:
        return klass

    def guided(z: Tensor, t: Tensor) -> Tensor:
        own = klass(z, t)
        return own + guidance * (own - everything(z, t))

    return guided


@torch.no_grad()
def exact_samples(flow: FlowModel, support: FieldSupport, x0: Tensor, *, label: str | int | None = None,
                  guidance: float = 0.0, solver: SolverConfig = SolverConfig(),
                  times: Tensor | None = None) -> SampleResult:
    """Integrate the exact (class, guided) marginal field from x0 (data coordinates) to t_max, as `FlowModel.sample`
    integrates the learned one: the same noise gives the two side by side. The exact field of an empirical
    dataset minimises the CFM loss and memorises: its samples land on training points (on images: copies of
    training images), which a learned field, smoother, does not."""
    z0 = flow.normalizer.encode(_as_tensor(x0).to(support.z1.device))
    result = integrate(exact_velocity(flow, support, label=label, guidance=guidance), z0, t1=flow.path.t_max,
                       solver=solver, times=times)
    trajectory = flow.normalizer.decode(result.trajectory)
    return SampleResult(samples=trajectory[-1], trajectory=trajectory, times=result.times, nfe=result.nfe)


@torch.no_grad()
def loss_by_t(flow: FlowModel, support: FieldSupport, *, n_times: int = 21, n_samples: int = 1024,
              seed: int = 0) -> LossByT:
    """The irreducible CFM loss and the model's CFM loss at n_times times in [0, t_max] (normalised units).

    Both are estimated on the same draws (one seed), so their gap is not blurred by sampling noise.
    The model's loss minus the irreducible one is what training can still remove: the model's distance to
    the exact marginal field, E ||v_theta - u_t||^2. For pairs drawn at a view width (`view_path`), both are
    those of the smoothed path, whose exact field is the one drawn.
    """
    path = view_path(flow, support)
    ts = torch.linspace(0.0, flow.path.t_max, n_times)
    floor = irreducible_loss(path, support.z1, ts, n_samples, torch.Generator().manual_seed(seed),
                             source=support.z0)
    model = cfm_loss_by_t(flow.latent_velocity, path, support.z1, ts, n_samples,
                          torch.Generator().manual_seed(seed), source=support.z0)
    return LossByT(ts=ts, irreducible=floor, model=model)
