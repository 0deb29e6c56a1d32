"""Numerical checks of the claims of Lipman et al. (2023) that the fields and likelihood modules rely on.

a. Theorem 2: the CFM and FM losses have the same gradient in theta.
b. The exact marginal field generates the marginal path: d/dt p_t + div(p_t u_t) = 0.
c. Integrating the exact marginal field (sigma_min -> 0) reproduces training points: it memorises.
d. Change of variables: densities integrate to one, and match closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from flowscope import SolverConfig
from flowscope.fields.exact import MarginalField, MarginalVelocity, marginal_field, marginal_field_pairs
from flowscope.maths import gaussian
from flowscope.maths.grid import grid_2d
from flowscope.maths.paths import AffinePath, OTPath, VEPath, VPPath, make_path
from flowscope.solver.likelihood import exact_divergence, log_likelihood
from flowscope.solver.sampling import VelocityODE


class TinyMLP(nn.Module):
    """v(x, t) = scale * net(concat(x, t)), float64."""

    def __init__(self, dim: int = 2, width: int = 32, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.scale = scale
        self.net = nn.Sequential(
            nn.Linear(dim + 1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, dim)
        ).double()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.scale * self.net(torch.cat([x, t[:, None]], dim=1))


def _dataset(n: int = 8, seed: int = 0) -> Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5


def _flat_grad(loss: Tensor, model: nn.Module) -> Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)])


def _posterior(path: AffinePath, data: Tensor, x: Tensor, t: float) -> Tensor:
    """p(x1_i | x_t = x) by Bayes' rule on the Gaussian conditional paths, [M, N] (independent of fields.py)."""
    tt = torch.tensor(t, dtype=torch.float64)
    mu, sigma = path.mu(data, tt), path.sigma(tt)
    log_lik = torch.distributions.Normal(mu[None], sigma).log_prob(x[:, None]).sum(-1)
    return torch.softmax(log_lik, dim=1)


# a. Theorem 2 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [OTPath(sigma_min=1e-2), VPPath(), VEPath(smin=0.05, smax=3.0)], ids=repr)
@pytest.mark.parametrize("t", [0.25, 0.8])
def test_theorem2_fm_and_cfm_gradients_agree_exactly(path: AffinePath, t: float) -> None:
    """For x_t ~ p_t, E[grad CFM | x_t] = sum_i w_i grad ||v - u(x_t|x1_i)||^2 = grad ||v - u(x_t)||^2."""
    data, model = _dataset(), TinyMLP()
    gen = torch.Generator().manual_seed(1)
    x1 = data[torch.randint(len(data), (512,), generator=gen)]
    x_t = path.psi(torch.randn(512, 2, generator=gen, dtype=torch.float64), x1, t)
    times = torch.full((512,), t, dtype=torch.float64)
    v = model(x_t, times)

    exact = marginal_field(path, data, x_t, t).velocity
    fm_loss = (v - exact).pow(2).sum(1).mean()
    weights = _posterior(path, data, x_t, t)
    cond = path.conditional_field(x_t[:, None], data[None], t)  # [M, N, d], Theorem 3
    cfm_loss = (weights * (v[:, None] - cond).pow(2).sum(-1)).sum(1).mean()

    fm_grad, cfm_grad = _flat_grad(fm_loss, model), _flat_grad(cfm_loss, model)
    torch.testing.assert_close(fm_grad, cfm_grad, rtol=1e-9, atol=1e-12)
    # the losses differ by a constant in theta: the irreducible variance of the conditional fields
    gap = (weights * (cond - exact[:, None]).pow(2).sum(-1)).sum(1).mean()
    torch.testing.assert_close(cfm_loss - fm_loss, gap)


def test_theorem2_monte_carlo_cfm_gradient_is_unbiased() -> None:
    """Plain CFM on joint draws (x1, x_t) agrees with the FM gradient on the same x_t up to Monte Carlo noise."""
    path, t, n = OTPath(sigma_min=1e-2), 0.6, 100_000
    data, model = _dataset(), TinyMLP(width=8)
    gen = torch.Generator().manual_seed(2)
    x1 = data[torch.randint(len(data), (n,), generator=gen)]
    x_t = path.psi(torch.randn(n, 2, generator=gen, dtype=torch.float64), x1, t)
    v = model(x_t, torch.full((n,), t, dtype=torch.float64))
    fm_grad = _flat_grad((v - marginal_field(path, data, x_t, t).velocity).pow(2).sum(1).mean(), model)
    cfm_grad = _flat_grad((v - path.conditional_field(x_t, x1, t)).pow(2).sum(1).mean(), model)
    wrong = _flat_grad((v - path.conditional_field(x_t, data.mean(0), t)).pow(2).sum(1).mean(), model)
    assert (cfm_grad - fm_grad).norm() < 0.03 * fm_grad.norm()
    assert (wrong - fm_grad).norm() > 0.2 * fm_grad.norm()  # the test can tell a wrong target apart


# b. continuity equation ----------------------------------------------------------------------------------


def _continuity_residual(
    field_at: Callable[[Tensor, float], MarginalField], x: Tensor, t: float, h: float = 1e-5
) -> tuple[Tensor, Tensor]:
    """d/dt log p + div u + u . grad log p (zero iff d/dt p + div(p u) = 0), and the size of its terms."""
    d_log_p = (field_at(x, t + h).log_density - field_at(x, t - h).log_density) / (2 * h)
    xg = x.clone().requires_grad_(True)
    field = field_at(xg, t)
    (score,) = torch.autograd.grad(field.log_density.sum(), xg, retain_graph=True)
    div = exact_divergence(field.velocity, xg)
    transport = (field.velocity * score).sum(1)
    return d_log_p + div + transport, d_log_p.abs() + div.abs() + transport.abs()


GAUSSIAN_PATHS = [OTPath(sigma_min=1e-2), VPPath(), VEPath(smin=0.05, smax=3.0), make_path("icfm", sigma=0.3)]


@pytest.mark.parametrize("path", GAUSSIAN_PATHS, ids=repr)
@pytest.mark.parametrize("t", [0.2, 0.5, 0.85])
def test_continuity_equation_for_the_exact_marginal_field(path: AffinePath, t: float) -> None:
    data = _dataset(10)
    x = path.psi(
        torch.randn(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64), data[:4].repeat(10, 1), t
    )
    residual, size = _continuity_residual(lambda z, s: marginal_field(path, data, z, s, chunk_size=3), x, t)
    assert (residual.abs() <= 1e-6 * (1 + size)).all()


@pytest.mark.parametrize("t", [0.2, 0.7])
def test_continuity_equation_over_coupled_pairs(t: float) -> None:
    """Any source and coupling: the pairs' marginal field transports the pairs' marginal density."""
    path = make_path("icfm", sigma=0.25)
    x1, gen = _dataset(12), torch.Generator().manual_seed(4)
    x0 = torch.randn(12, 2, generator=gen, dtype=torch.float64) * 0.5 - 2.0
    x = path.psi(x0, x1, t) + 0.3 * torch.randn(12, 2, generator=gen, dtype=torch.float64)
    residual, size = _continuity_residual(lambda z, s: marginal_field_pairs(path, x0, x1, z, s), x, t)
    assert (residual.abs() <= 1e-6 * (1 + size)).all()


# c. memorisation -----------------------------------------------------------------------------------------


def test_exact_marginal_field_memorises_the_training_points() -> None:
    data, path = _dataset(10), OTPath(sigma_min=1e-4)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    times = torch.tensor([0.0, 1.0], dtype=torch.float64)
    x1 = odeint(VelocityODE(MarginalVelocity(path, data)), x0, times, method="dopri5", atol=1e-6, rtol=1e-6)[-1]
    nearest = torch.cdist(x1, data).min(dim=1).values
    assert nearest.max() < 1e-2
    assert torch.cdist(x1, data).argmin(dim=1).unique().numel() > 5  # several training points are reached


# d. change of variables ----------------------------------------------------------------------------------


def test_zero_velocity_gives_the_prior_density() -> None:
    x = torch.randn(16, 3, dtype=torch.float64) * 2
    got = log_likelihood(lambda z, t: torch.zeros_like(z), x, prior_std=2.5)
    reference = torch.distributions.Normal(0.0, torch.tensor(2.5, dtype=x.dtype)).log_prob(x).sum(1)
    torch.testing.assert_close(got.log_prob, reference, rtol=0.0, atol=1e-12)


def test_linear_field_gives_the_closed_form_gaussian() -> None:
    """v = c x: x1 = e^c x0, so p_1 = N(0, (prior_std e^c)^2 I)."""
    c, std = -0.7, 1.3
    x = torch.randn(32, 2, dtype=torch.float64) * 0.8
    got = log_likelihood(lambda z, t: c * z, x, prior_std=std, solver=SolverConfig("dopri5", atol=1e-9, rtol=1e-9))
    reference = torch.distributions.Normal(0.0, torch.tensor(std * math.exp(c), dtype=x.dtype)).log_prob(x).sum(1)
    torch.testing.assert_close(got.log_prob, reference, rtol=1e-7, atol=1e-7)


def test_model_density_integrates_to_one() -> None:
    """A random smooth field that visibly deforms N(0, I): exp(log p_1) still sums to 1 over a wide grid."""
    model = TinyMLP(width=16, scale=0.6, seed=6)
    grid = grid_2d((-7.0, 7.0), (-7.0, 7.0), 71, dtype=torch.float64)
    result = log_likelihood(model, grid.points, prior_std=1.0, solver=SolverConfig("dopri5", atol=1e-6, rtol=1e-6))
    cell = float((grid.xs[1] - grid.xs[0]) * (grid.ys[1] - grid.ys[0]))
    mass = float(result.log_prob.exp().sum()) * cell
    assert mass == pytest.approx(1.0, abs=2e-3)
    deformation = (result.log_prob - gaussian.log_prob(grid.points, 1.0)).abs().max()
    assert deformation > 0.3  # the flow is far from the identity, so a wrong divergence would show
