"""The core's one entry point for a model's fields in data coordinates, against the formulas written out.

The reference here is the explorer's former computation, written directly in float64: normalise, evaluate
alpha_t / sigma_t, softmax posterior over data points (Gaussian source) or over coupled pairs (stored
source), average, map back (velocity times scale, log-density minus d log scale).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from flowscope import FlowModel, MLPConfig, TrainConfig, make_path, train
from flowscope.data.datasets import make_dataset
from flowscope.fields import fieldview
from flowscope.maths.couplings import exact_ot_permutation, sinkhorn_permutation
from flowscope.maths.grid import grid_2d

GRID = grid_2d((-2.5, 2.5), (-2.0, 2.0), 12).points


@pytest.fixture(scope="module")
def gaussian_flow() -> FlowModel:
    """A small OT model of moons (the exact fields do not need a good one)."""
    data = torch.from_numpy(make_dataset("moons", 800, seed=0))
    return train(data, model=MLPConfig(dim=2, width=16, depth=1),
                 config=TrainConfig(steps=50, device="cpu")).model


def _stored_source_flow(coupling: str) -> FlowModel:
    """A small I-CFM model from 8gaussians samples to moons with the given coupling."""
    data = torch.from_numpy(make_dataset("moons", 600, seed=0))
    source = torch.from_numpy(make_dataset("8gaussians", 600, seed=1))
    return train(data, path=make_path("icfm", sigma=0.1), source=source, coupling=coupling,
                 model=MLPConfig(dim=2, width=16, depth=1), config=TrainConfig(steps=20, device="cpu")).model


def _coefficients(flow: FlowModel, t: float) -> tuple[float, float, float, float]:
    """alpha_t, alpha_t', sigma_t, sigma_t' in float64."""
    tt = torch.tensor(t, dtype=torch.float64)
    path = flow.path
    return float(path.alpha(tt)), float(path.d_alpha(tt)), float(path.sigma(tt)), float(path.d_sigma(tt))


def _encode(flow: FlowModel, x: Tensor) -> Tensor:
    """Data -> normalised coordinates in float64, written out."""
    norm = flow.normalizer
    return (x.double() - torch.tensor(norm.mean, dtype=torch.float64)) / torch.tensor(norm.scale, dtype=torch.float64)


def _scale(flow: FlowModel) -> Tensor:
    """The per-column scale in float64."""
    return torch.tensor(flow.normalizer.scale, dtype=torch.float64)


def _direct_gaussian(flow: FlowModel, data: Tensor, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Exact marginal field and log-density of data under a Gaussian source, in data coordinates."""
    a, da, s, ds = _coefficients(flow, t)
    z1, z = _encode(flow, data), _encode(flow, x)
    sq = torch.cdist(z, a * z1).square()  # [M, N]
    weights = torch.softmax(-sq / (2 * s**2), dim=1)
    conditional = (ds / s) * (z[:, None, :] - a * z1[None]) + da * z1[None]  # Theorem 3, [M, N, d]
    velocity = (weights[..., None] * conditional).sum(1) * _scale(flow)
    d = z.shape[1]
    log_p = (torch.logsumexp(-sq / (2 * s**2), dim=1) - math.log(len(z1)) - 0.5 * d * math.log(2 * math.pi * s**2)
             - _scale(flow).log().sum())
    return velocity, log_p


def _direct_pairs(flow: FlowModel, z0: Tensor, z1: Tensor, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Exact marginal field over coupled pairs (kernel of the interpolant's noise), in data coordinates."""
    a, da, s, ds = _coefficients(flow, t)
    z = _encode(flow, x)
    var = flow.path.noise_std**2
    sq = torch.cdist(z, a * z1.double() + s * z0.double()).square()
    weights = torch.softmax(-sq / (2 * var), dim=1)
    velocity = weights @ (da * z1.double() + ds * z0.double()) * _scale(flow)
    d = z.shape[1]
    log_p = (torch.logsumexp(-sq / (2 * var), dim=1) - math.log(len(z1)) - 0.5 * d * math.log(2 * math.pi * var)
             - _scale(flow).log().sum())
    return velocity, log_p


@pytest.mark.parametrize("t", [0.0, 0.3, 0.9, 1.0])
def test_gaussian_source_fields_equal_the_formulas(gaussian_flow: FlowModel, t: float) -> None:
    data = torch.from_numpy(make_dataset("moons", 400, seed=3))
    support = fieldview.field_support(gaussian_flow, data)
    probe = torch.tensor([0.3, -0.2])
    view = fieldview.fields_at(gaussian_flow, support, GRID, t, x1_index=7, probe=probe)
    t = gaussian_flow.clamp_time(t)
    velocity, log_p = _direct_gaussian(gaussian_flow, data, GRID, t)
    # at t = 1 the posterior is nearly one-hot (sigma_1 = 1e-4): float32 carries ~1e-3 relative error there
    scale = float(velocity.abs().max()) * (1e-4 if t < 0.95 else 2e-3)
    log_rtol = 1e-4 if t < 0.95 else 5e-3
    torch.testing.assert_close(view.marginal.double(), velocity, atol=max(2e-4, scale), rtol=1e-4)
    torch.testing.assert_close(view.marginal_log_density.double(), log_p, atol=2e-3, rtol=log_rtol)
    # the conditional field of x1 is the marginal of a one-point dataset
    one_v, one_log = _direct_gaussian(gaussian_flow, data[7:8], GRID, t)
    torch.testing.assert_close(view.conditional.double(), one_v, atol=max(2e-4, scale), rtol=1e-4)
    torch.testing.assert_close(view.conditional_log_density.double(), one_log, atol=2e-3, rtol=log_rtol)
    torch.testing.assert_close(view.x1, data[7])
    a = _coefficients(gaussian_flow, t)[0]
    assert view.centre is not None
    torch.testing.assert_close(view.centre.double(), a * data[7].double() + (1 - a) * torch.tensor(
        gaussian_flow.normalizer.mean, dtype=torch.float64), atol=1e-5, rtol=1e-5)
    probe_v, _ = _direct_gaussian(gaussian_flow, data, probe[None], t)
    torch.testing.assert_close(view.probe_velocity.double(), probe_v[0], atol=max(2e-4, scale), rtol=1e-4)
    learned = gaussian_flow.velocity(GRID, torch.full((len(GRID),), t))
    torch.testing.assert_close(view.learned, learned)
    torch.testing.assert_close(view.error, (learned - view.marginal).norm(dim=1), atol=1e-4, rtol=1e-4)
    sq = torch.cdist(_encode(gaussian_flow, probe[None]), a * _encode(gaussian_flow, data)).square()[0]
    weights = torch.softmax(-sq / (2 * _coefficients(gaussian_flow, t)[2] ** 2), dim=0)
    top = torch.topk(weights, 60)
    torch.testing.assert_close(view.posterior.weights.double(), top.values, atol=1e-5, rtol=1e-3)
    torch.testing.assert_close(view.posterior_points, data[view.posterior.indices])


@pytest.mark.parametrize("coupling", ["independent", "ot", "sinkhorn"])
def test_stored_source_fields_use_the_models_own_coupling(coupling: str) -> None:
    flow = _stored_source_flow(coupling)
    data = torch.from_numpy(make_dataset("moons", 300, seed=5))
    support = fieldview.field_support(flow, data, seed=0)
    assert support.z0 is not None and support.z0.shape == support.z1.shape == (300, 2)
    # the pairs are those of the model's coupling of the same draw of sources
    z1 = _encode(flow, data).float()
    drawn = flow.normalizer.encode(flow.source[torch.randperm(len(flow.source),
                                                              generator=torch.Generator().manual_seed(0))[:300]])
    expected = {"independent": lambda: drawn, "ot": lambda: drawn[exact_ot_permutation(drawn, z1)],
                "sinkhorn": lambda: drawn[sinkhorn_permutation(drawn, z1)]}[coupling]()
    torch.testing.assert_close(support.z0, expected)
    for t in (0.2, 0.7):
        view = fieldview.fields_at(flow, support, GRID, t, x1_index=4)
        velocity, log_p = _direct_pairs(flow, support.z0, support.z1, GRID, t)
        torch.testing.assert_close(view.marginal.double(), velocity, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(view.marginal_log_density.double(), log_p, atol=2e-3, rtol=1e-4)
        partners = support.z0 if coupling == "independent" else support.z0[4:5]
        cond_v, cond_log = _direct_pairs(flow, partners, support.z1[4:5].expand_as(partners), GRID, t)
        torch.testing.assert_close(view.conditional.double(), cond_v, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(view.conditional_log_density.double(), cond_log, atol=2e-3, rtol=1e-4)
        assert (view.partner is None) == (coupling == "independent")


def test_densities_are_normalised_in_data_coordinates(gaussian_flow: FlowModel) -> None:
    data = torch.from_numpy(make_dataset("moons", 400, seed=3))
    grid = grid_2d((-6.0, 6.0), (-6.0, 6.0), 121)
    cell = (12.0 / 120) ** 2
    view = fieldview.fields_at(gaussian_flow, fieldview.field_support(gaussian_flow, data), grid.points, 0.4)
    assert float(view.marginal_log_density.exp().sum()) * cell == pytest.approx(1.0, abs=0.02)
    assert float(view.conditional_log_density.exp().sum()) * cell == pytest.approx(1.0, abs=0.02)


def test_loss_by_t_the_model_is_above_the_irreducible_loss(gaussian_flow: FlowModel) -> None:
    support = fieldview.field_support(gaussian_flow, make_dataset("moons", 1000, seed=0))
    losses = fieldview.loss_by_t(gaussian_flow, support, n_times=5, n_samples=512)
    assert float(losses.irreducible[0]) == pytest.approx(2.0, rel=0.15)  # OT at t = 0: variance of 2-D data
    assert bool((losses.model >= losses.irreducible * 0.9).all())
    pairs = _stored_source_flow("ot")
    paired = fieldview.loss_by_t(pairs, fieldview.field_support(pairs, make_dataset("moons", 300, seed=0)),
                                 n_times=4, n_samples=64)
    assert paired.ts.shape == paired.irreducible.shape == paired.model.shape == (4,)
    assert bool((paired.irreducible >= 0).all())


def test_support_is_capped_and_in_data_coordinates(gaussian_flow: FlowModel) -> None:
    data = make_dataset("moons", 7000, seed=1)
    support = fieldview.field_support(gaussian_flow, data)
    assert len(support) == fieldview.FIELD_POINTS
    np.testing.assert_allclose(support.x1.numpy(), data[: fieldview.FIELD_POINTS], atol=1e-6)
    np.testing.assert_allclose(gaussian_flow.normalizer.decode(support.z1).numpy(), support.x1.numpy(), atol=1e-5)


def test_pairs_of_kernel_width_0_are_drawn_at_the_view_width() -> None:
    """A stored-source model trained without interpolant noise: its exact field (Diracs) cannot be drawn, so
    every view of it uses the pairs smoothed at VIEW_SIGMA, which is the same as a path of that width."""
    data = torch.from_numpy(make_dataset("moons", 300, seed=0))
    source = torch.from_numpy(make_dataset("8gaussians", 300, seed=1))
    flow = train(data, path=make_path("ot", sigma_min=0.0), source=source, model=MLPConfig(dim=2, width=16, depth=1),
                 config=TrainConfig(steps=10, device="cpu")).model
    assert flow.path.noise_std == 0
    support = fieldview.field_support(flow, data)
    assert support.view_sigma == fieldview.VIEW_SIGMA
    smoothed = fieldview.view_path(flow, support)
    assert smoothed.noise_std == fieldview.VIEW_SIGMA and flow.path.noise_std == 0  # the model's path unchanged
    view = fieldview.fields_at(flow, support, GRID, 0.5)
    assert torch.isfinite(view.marginal).all() and torch.isfinite(view.marginal_log_density).all()
    noisy = FlowModel(flow.net, path=make_path("icfm", sigma=fieldview.VIEW_SIGMA), normalizer=flow.normalizer,
                      source=flow.source, coupling=flow.coupling)
    reference = fieldview.FieldSupport(z1=support.z1, z0=support.z0, x1=support.x1)
    assert torch.allclose(view.marginal, fieldview.fields_at(noisy, reference, GRID, 0.5).marginal, atol=1e-5)
    assert torch.isfinite(fieldview.marginal_log_density(flow, support, GRID, 0.3)).all()
    losses = fieldview.loss_by_t(flow, support, n_times=3, n_samples=64)
    assert torch.isfinite(losses.irreducible).all() and torch.isfinite(losses.model).all()
    gaussian = fieldview.field_support(train(data, model=MLPConfig(dim=2, width=8, depth=1),
                                             config=TrainConfig(steps=5, device="cpu")).model, data)
    assert gaussian.view_sigma is None  # a Gaussian source's fields are exact at any interpolant width
