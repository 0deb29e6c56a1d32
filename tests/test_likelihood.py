"""Change-of-variables log-likelihoods: closed forms for linear fields, divergence estimators, bookkeeping."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from flowscope import SolverConfig
from flowscope.maths import gaussian
from flowscope.solver.likelihood import (
    exact_divergence,
    hutchinson_divergence,
    log_density_grid,
    log_likelihood,
    rademacher,
)

TIGHT = {"solver": SolverConfig("dopri5", atol=1e-8, rtol=1e-8)}


class TinyMLP(nn.Module):
    """v(x, t) = net(concat(x, t)), small and smooth (tanh), float64."""

    def __init__(self, dim: int, width: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.Tanh(), nn.Linear(width, dim)).double()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def _linear_field(matrix: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """v(x, t) = A x (time independent): x1 = expm(A) x0, so log p_1(x) = log p_0(expm(-A) x) - tr(A)."""
    return lambda x, t: x @ matrix.T


def _linear_closed_form(matrix: Tensor, x1: Tensor, prior_std: float, t1: float = 1.0) -> Tensor:
    x0 = x1 @ torch.linalg.matrix_exp(-t1 * matrix).T
    return gaussian.log_prob(x0, prior_std) - t1 * torch.trace(matrix)


@pytest.fixture(scope="module")
def points() -> Tensor:
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5


def test_general_linear_field_closed_form(points: Tensor) -> None:
    """A non-normal, non-symmetric A: exercises the sign and the direction of the time integration."""
    matrix = torch.tensor([[0.3, -0.8], [0.4, -0.5]], dtype=torch.float64)
    for t1 in (1.0, 0.6):
        got = log_likelihood(_linear_field(matrix), points, prior_std=1.3, t1=t1, **TIGHT)
        torch.testing.assert_close(got.log_prob, _linear_closed_form(matrix, points, 1.3, t1), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got.x0, points @ torch.linalg.matrix_exp(-t1 * matrix).T, rtol=1e-6, atol=1e-6)
        assert got.nfe > 0


def test_hutchinson_is_exact_for_scaled_identity_plus_skew() -> None:
    """eps^T (cI + S) eps = c d for Rademacher eps and skew S, so Hutchinson (auto above d = 8) is exact."""
    d = 12
    gen = torch.Generator().manual_seed(1)
    skew = torch.randn(d, d, generator=gen, dtype=torch.float64) * 0.2
    matrix = 0.3 * torch.eye(d, dtype=torch.float64) + skew - skew.T
    x1 = torch.randn(32, d, generator=gen, dtype=torch.float64)
    got = log_likelihood(_linear_field(matrix), x1, prior_std=1.0, generator=gen, **TIGHT)
    torch.testing.assert_close(got.log_prob, _linear_closed_form(matrix, x1, 1.0), rtol=1e-6, atol=1e-6)


def test_hutchinson_is_unbiased_with_probes_fixed_over_the_solve() -> None:
    """With fixed probes the estimate is log p + tr(A) - eps^T A eps per row: mean over rows -> exact."""
    d, n = 10, 2000
    gen = torch.Generator().manual_seed(2)
    matrix = torch.randn(d, d, generator=gen, dtype=torch.float64) * 0.1
    x1 = torch.randn(1, d, generator=gen, dtype=torch.float64).expand(n, d).contiguous()
    kwargs = {"prior_std": 1.0, "chunk_size": n}
    exact = log_likelihood(_linear_field(matrix), x1[:1], divergence="exact", **kwargs).log_prob
    hutch = log_likelihood(_linear_field(matrix), x1, divergence="hutchinson", generator=gen, **kwargs).log_prob
    assert hutch.std() > 1e-3  # the probes really differ between rows
    assert abs(float(hutch.mean() - exact[0])) < 4 * float(hutch.std()) / math.sqrt(n)
    more = log_likelihood(
        _linear_field(matrix), x1[:200], divergence="hutchinson", n_probes=16, generator=gen, **kwargs
    )
    assert more.log_prob.std() < hutch.std() / 2.5  # averaging 16 probes cuts the spread ~4x


def test_exact_divergence_is_jacobian_trace() -> None:
    model = TinyMLP(3)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    t = torch.full((5,), 0.3, dtype=torch.float64)
    div = exact_divergence(model(x, t), x)
    for row in range(5):
        jac = torch.autograd.functional.jacobian(lambda z, r=row: model(z[None], t[r : r + 1])[0], x[row].detach())
        torch.testing.assert_close(div[row], torch.trace(jac))


def test_hutchinson_probe_average_matches_exact() -> None:
    """Averaging eps^T J eps over all 2^d sign patterns gives the trace exactly."""
    model = TinyMLP(3, seed=3)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.full((4,), 0.7, dtype=torch.float64)
    signs = torch.tensor([[(k >> i & 1) * 2 - 1 for i in range(3)] for k in range(8)], dtype=torch.float64)
    probes = signs[:, None, :].expand(8, 4, 3)
    torch.testing.assert_close(hutchinson_divergence(model(x, t), x, probes), exact_divergence(model(x, t), x))
    probe = rademacher((1000,), x, torch.Generator().manual_seed(0))
    assert set(probe.tolist()) == {-1.0, 1.0}


def test_chunks_give_the_same_answer_and_keep_no_graph(points: Tensor) -> None:
    model = TinyMLP(2, seed=4)
    whole = log_likelihood(model, points, prior_std=1.0)
    pieces = log_likelihood(model, points, prior_std=1.0, chunk_size=20)
    torch.testing.assert_close(pieces.log_prob, whole.log_prob, rtol=1e-4, atol=1e-4)
    assert pieces.nfe > whole.nfe  # counted over every chunk's solve
    assert not whole.log_prob.requires_grad and not whole.x0.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_prior_log_density_argument(points: Tensor) -> None:
    """A shifted Gaussian prior given as a function, with the zero field: log p_1 = that prior."""
    mean = torch.tensor([3.0, -1.0], dtype=torch.float64)
    got = log_likelihood(
        lambda x, t: torch.zeros_like(x), points, prior_log_density=lambda x: -(x - mean).pow(2).sum(1)
    )
    torch.testing.assert_close(got.log_prob, -(points - mean).pow(2).sum(1))
    with pytest.raises(ValueError, match="exactly one"):
        log_likelihood(lambda x, t: x, points)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(lambda x, t: x, points, prior_std=1.0, divergence="trace")


def test_log_density_grid_matches_pointwise() -> None:
    model = TinyMLP(2, seed=5)
    grid = log_density_grid(model, (-2.0, 2.0), (-1.0, 1.0), 5, prior_std=1.0, dtype=torch.float64, **TIGHT)
    assert grid.log_prob.shape == (5, 5)
    point = torch.stack([grid.xs[3], grid.ys[1]])[None]
    single = log_likelihood(model, point, prior_std=1.0, **TIGHT).log_prob
    torch.testing.assert_close(grid.log_prob[1, 3], single[0], rtol=1e-6, atol=1e-6)
