"""The paper's paths: closed-form derivatives vs autograd, psi_t solves its ODE, end points and priors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.maths.paths import SINGULAR_EPS, AffinePath, CosinePath, OTPath, VEPath, VPPath, make_path

PATHS: list[AffinePath] = [
    OTPath(sigma_min=1e-3),
    OTPath(sigma_min=0.0, noise_std=0.1),
    VPPath(),
    VPPath(beta_min=0.5, beta_max=5.0),
    VEPath(smin=0.02, smax=7.0),
    CosinePath(),
]
IDS = [repr(p) for p in PATHS]
T = torch.linspace(0.0, 1.0 - 1e-3, 101, dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_derivatives_match_autograd(path: AffinePath) -> None:
    t = T.clone().requires_grad_(True)
    for value, closed_form in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        (grad,) = torch.autograd.grad((value(t) + 0.0 * t).sum(), t)  # + 0 t: constants too
        torch.testing.assert_close(closed_form(T), grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_psi_solves_conditional_ode(path: AffinePath) -> None:
    """d/dt psi_t(x0) = u_t(psi_t(x0) | x1) (Theorem 3), by autograd through t."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(T.numel(), 3, generator=gen, dtype=torch.float64)
    x1 = torch.randn(T.numel(), 3, generator=gen, dtype=torch.float64)
    t = T.clone().requires_grad_(True)
    psi = path.psi(x0, x1, t)
    dpsi = torch.stack([torch.autograd.grad(psi[:, k].sum(), t, retain_graph=True)[0] for k in range(3)], 1)
    torch.testing.assert_close(path.conditional_field(psi.detach(), x1, T), dpsi, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(path.pair_velocity(x0, x1, T), dpsi, rtol=1e-7, atol=1e-7)


def test_paper_closed_forms() -> None:
    """The table of docs/design.md, evaluated at a few times."""
    t = torch.tensor([0.0, 0.3, 0.9], dtype=torch.float64)
    ot = OTPath(sigma_min=0.01)
    torch.testing.assert_close(ot.sigma(t), 1 - 0.99 * t)
    vp = VPPath()
    r = 1 - t
    a = torch.exp(-0.5 * (0.1 * r + 0.5 * 19.9 * r**2))
    torch.testing.assert_close(vp.alpha(t), a)
    torch.testing.assert_close(vp.sigma(t), torch.sqrt(1 - a**2))
    ve = VEPath(smin=0.01, smax=5.0)
    torch.testing.assert_close(ve.sigma(t), 0.01 * (5.0 / 0.01) ** (1 - t))
    torch.testing.assert_close(ve.alpha(t), torch.ones_like(t))


def test_end_points_and_priors() -> None:
    one = torch.tensor(1.0, dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    assert float(OTPath(sigma_min=0.01).sigma(one)) == pytest.approx(0.01)
    assert float(OTPath().alpha(zero)) == 0.0 and OTPath().prior_std == pytest.approx(1.0)
    assert VPPath().prior_std == pytest.approx(1.0, abs=1e-4)
    assert float(VPPath().alpha(one)) == pytest.approx(1.0)
    assert VEPath(smin=0.01, smax=9.0).prior_std == pytest.approx(9.0)
    assert VPPath().t_max == 1 - SINGULAR_EPS and OTPath(sigma_min=0.0).t_max == 1 - SINGULAR_EPS
    assert OTPath(sigma_min=1e-4).t_max == 1.0


def test_ot_path_is_straight() -> None:
    """Under the OT path the conditional flow is a straight line at constant speed (the paper's point)."""
    path = OTPath(sigma_min=0.0)
    x0, x1 = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.5]])
    speeds = [path.pair_velocity(x0, x1, torch.tensor([s])) for s in (0.0, 0.4, 0.8)]
    for v in speeds:
        torch.testing.assert_close(v, x1 - x0)


@settings(max_examples=40, deadline=None)
@given(t=st.floats(0.0, 0.99), sigma_min=st.floats(1e-4, 0.5))
def test_conditional_field_at_mean_is_mean_velocity(t: float, sigma_min: float) -> None:
    """At x = mu_t(x1) the conditional field reduces to mu_t'(x1)."""
    path = OTPath(sigma_min=sigma_min)
    x1 = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    tt = torch.tensor([t], dtype=torch.float64)
    torch.testing.assert_close(path.conditional_field(path.mu(x1, tt), x1, tt), x1)


def test_make_path_round_trip_and_errors() -> None:
    for path in PATHS:
        rebuilt = make_path(**path.config())
        assert rebuilt.config() == path.config()
    icfm = make_path("icfm", sigma=0.2)
    assert isinstance(icfm, OTPath) and icfm.noise_std == 0.2 and icfm.sigma_min == 0.0
    with pytest.raises(ValueError, match="unknown path 'nope'"):
        make_path("nope")
    with pytest.raises(ValueError, match="smin < smax"):
        VEPath(smin=2.0, smax=1.0)
    with pytest.raises(ValueError, match="bad parameters"):
        make_path("vp", smax=3.0)


def test_sample_adds_interpolant_noise_only_to_x_t() -> None:
    path = OTPath(sigma_min=0.0, noise_std=0.5)
    gen = torch.Generator().manual_seed(1)
    x0, x1 = torch.zeros(4000, 2), torch.ones(4000, 2)
    t = torch.full((4000,), 0.5)
    s = path.sample(x0, x1, t, gen)
    torch.testing.assert_close(s.u_t, x1 - x0)
    assert float((s.x_t - 0.5).std()) == pytest.approx(0.5, rel=0.05)
    assert not math.isnan(float(s.x_t.sum()))


def test_ot_fast_sample_matches_the_generic_formula() -> None:
    """OTPath.sample's fused form equals psi_t and d/dt psi_t of the generic affine path."""
    path = OTPath(sigma_min=0.05)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    x1 = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(64, generator=gen, dtype=torch.float64)
    s = path.sample(x0, x1, t)
    torch.testing.assert_close(s.x_t, AffinePath.psi(path, x0, x1, t))
    torch.testing.assert_close(s.u_t, AffinePath.pair_velocity(path, x0, x1, t))
