"""Exact conditional / marginal fields against naive float64 formulas, and their memory behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import Tensor

from flowscope.fields.exact import (
    MarginalField,
    MarginalVelocity,
    cfm_loss_by_t,
    conditional_field_grid,
    conditional_log_density,
    field_error,
    irreducible_loss,
    marginal_field,
    marginal_field_pairs,
    posterior_topk,
)
from flowscope.maths.grid import grid_2d
from flowscope.maths.paths import AffinePath, CosinePath, OTPath, VEPath, VPPath, make_path

GAUSSIAN_PATHS = {
    "ot": OTPath(sigma_min=1e-3),
    "vp": VPPath(),
    "ve": VEPath(smin=0.01, smax=4.0),
    "icfm_noisy": make_path("icfm", sigma=0.3),
}
PAIR_PATHS = {"icfm_noisy": make_path("icfm", sigma=0.3), "cosine_noisy": CosinePath(noise_std=0.2)}
TIMES = (0.0, 0.37, 0.93)
Cloud = tuple[Tensor, Tensor]


def _schedule(path: AffinePath, t: float) -> tuple[float, float, float, float]:
    """alpha, alpha', sigma, sigma' at t in float64."""
    tt = torch.tensor(t, dtype=torch.float64)
    return float(path.alpha(tt)), float(path.d_alpha(tt)), float(path.sigma(tt)), float(path.d_sigma(tt))


def _naive_mixture(x: Tensor, centres: Tensor, fields: Tensor, var: float) -> tuple[Tensor, Tensor]:
    """Direct float64 average of fields [M, N, d] under softmax(-|x - c|^2 / 2var), and log p [M]."""
    sq = (x[:, None, :] - centres[None]).pow(2).sum(-1)
    log_k = -sq / (2 * var) - 0.5 * x.shape[1] * torch.log(torch.tensor(2 * torch.pi * var, dtype=x.dtype))
    weights = torch.softmax(log_k, dim=1)
    log_p = torch.logsumexp(log_k, dim=1) - torch.log(torch.tensor(float(centres.shape[0]), dtype=x.dtype))
    return (weights[..., None] * fields).sum(1), log_p


def naive_marginal(path: AffinePath, data: Tensor, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """The marginal field by its definition sum_i w_i u_t(x | x1_i), in float64 with difference tensors."""
    data, x = data.double(), x.double()
    a, da, b, db = _schedule(path, t)
    s = path.noise_std
    # E[alpha' x1 + sigma' x0 | x_t = x, x1] for x_t = alpha x1 + sigma x0 + s eps (Theorem 3 when s = 0).
    cond = (b * db / (b**2 + s**2)) * (x[:, None] - a * data[None]) + da * data[None]
    if s == 0:
        torch.testing.assert_close(cond, path.conditional_field(x[:, None], data[None], t))
    return _naive_mixture(x, a * data, cond, b**2 + s**2)


def naive_pairs(path: AffinePath, x0: Tensor, x1: Tensor, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Marginal over pairs: kernel N(alpha x1 + sigma x0, s^2), value alpha' x1 + sigma' x0, float64."""
    x0, x1, x = x0.double(), x1.double(), x.double()
    a, da, b, db = _schedule(path, t)
    values = (da * x1 + db * x0)[None].expand(x.shape[0], -1, -1)
    return _naive_mixture(x, a * x1 + b * x0, values, path.noise_std**2)


def _float32_slack(x: Tensor, centres: Tensor, var: float) -> float:
    """Logit error of the float32 expansion x.c - |c|^2/2 about the centres' mean: ~4 eps R^2 / sigma^2."""
    origin = centres.mean(0)
    radius = max(float((x - origin).norm(dim=1).max()), float((centres - origin).norm(dim=1).max()))
    return 4 * torch.finfo(torch.float32).eps * radius**2 / var


def _assert_field_close(got: MarginalField, ref: tuple[Tensor, Tensor], dtype: torch.dtype, slack: float) -> None:
    """Velocity relative to its scale, log-density relative to |log p|; float32 gets the expansion's slack."""
    tol = max(2e-5, slack) if dtype == torch.float32 else 1e-10
    ref_v, ref_lp = ref
    assert (got.velocity.double() - ref_v).abs().max() <= tol * ref_v.abs().max().clamp_min(1.0)
    assert ((got.log_density.double() - ref_lp).abs() <= tol * (1 + ref_lp.abs())).all()


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    """A 2D dataset (N = 23, deliberately not a multiple of the chunk sizes) and query points."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(23, 2, generator=gen, dtype=torch.float64) * 1.5 + torch.tensor([2.0, -1.0])
    x = torch.randn(31, 2, generator=gen, dtype=torch.float64) * 2.5
    return data, x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 7, 23, None])
@pytest.mark.parametrize("name", sorted(GAUSSIAN_PATHS))
def test_marginal_field_matches_naive(name: str, chunk: int | None, dtype: torch.dtype, cloud: Cloud) -> None:
    data, x = cloud
    path = GAUSSIAN_PATHS[name]
    for t in TIMES:
        got = marginal_field(path, data.to(dtype), x.to(dtype), t, chunk_size=chunk)
        assert got.velocity.dtype == dtype and got.log_density.shape == (x.shape[0],)
        a, _, b, _ = _schedule(path, t)
        slack = _float32_slack(x, a * data, b**2 + path.noise_std**2)
        _assert_field_close(got, naive_marginal(path, data, x, t), dtype, slack)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 7, 23, None])
@pytest.mark.parametrize("name", sorted(PAIR_PATHS))
def test_marginal_field_pairs_matches_naive(name: str, chunk: int | None, dtype: torch.dtype, cloud: Cloud) -> None:
    data, x = cloud
    path = PAIR_PATHS[name]
    x0 = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 3.0
    for t in TIMES:
        got = marginal_field_pairs(path, x0.to(dtype), data.to(dtype), x.to(dtype), t, chunk_size=chunk)
        a, _, b, _ = _schedule(path, t)
        slack = _float32_slack(x, a * data + b * x0, path.noise_std**2)
        _assert_field_close(got, naive_pairs(path, x0, data, x, t), dtype, slack)


def test_pairs_need_interpolant_noise(cloud: Cloud) -> None:
    data, x = cloud
    with pytest.raises(ValueError, match="noise_std > 0"):
        marginal_field_pairs(OTPath(sigma_min=0.0), data, data, x, 0.5)


def test_singular_time_is_refused(cloud: Cloud) -> None:
    data, x = cloud
    with pytest.raises(ValueError, match="t_max"):
        marginal_field(VPPath(), data, x, 1.0)


def test_float32_far_from_origin_and_small_sigma(cloud: Cloud) -> None:
    """The addmm expansion stays accurate for data far from the origin and a narrow kernel (t near 1)."""
    data, x = cloud
    far, path, t = data + 1000.0, OTPath(sigma_min=1e-3), 0.97
    xq = far[:5] * t + 0.01 * x[:5]  # near the data, where the posterior is sharp
    got = marginal_field(path, far.float(), xq.float(), t)
    ref_v, _ = naive_marginal(path, far, xq, t)
    assert (got.velocity.double() - ref_v).abs().max() < 1e-2 * ref_v.abs().max()


def test_single_point_marginal_is_conditional(cloud: Cloud) -> None:
    """With one data point the posterior is trivial: u_t(x) = u_t(x | x1) and p_t(x) = p_t(x | x1)."""
    data, x = cloud
    for path in GAUSSIAN_PATHS.values():
        got = marginal_field(path, data[:1], x, 0.6)
        torch.testing.assert_close(got.velocity, conditional_field_grid(path, data[0], x, 0.6))
        torch.testing.assert_close(got.log_density, conditional_log_density(path, data[0], x, 0.6))


def test_conditional_field_and_density_closed_forms(cloud: Cloud) -> None:
    data, x = cloud
    path, t = VPPath(), 0.4
    torch.testing.assert_close(conditional_field_grid(path, data[3], x, t), path.conditional_field(x, data[3], t))
    tt = torch.tensor(t, dtype=torch.float64)
    normal = torch.distributions.Normal(path.mu(data[3], tt), path.sigma(tt))
    torch.testing.assert_close(conditional_log_density(path, data[3], x, t), normal.log_prob(x).sum(1))


def test_score_of_log_density_is_posterior_formula(cloud: Cloud) -> None:
    """autograd of log p_t (the differentiable branch) = (alpha E_w[x1] - x) / sigma^2, Tweedie's formula."""
    data, x = cloud
    path, t = OTPath(sigma_min=1e-3), 0.55
    a, _, b, _ = _schedule(path, t)
    xg = x.clone().requires_grad_(True)
    field = marginal_field(path, data, xg, t, chunk_size=5)
    (score,) = torch.autograd.grad(field.log_density.sum(), xg)
    weights = torch.softmax(-(x[:, None] - a * data[None]).pow(2).sum(-1) / (2 * b**2), dim=1)
    torch.testing.assert_close(score, (a * weights @ data - x) / b**2, rtol=1e-8, atol=1e-8)


def test_posterior_topk_matches_naive(cloud: Cloud) -> None:
    data, x = cloud
    path, t = VEPath(smin=0.01, smax=4.0), 0.5
    a, _, b, _ = _schedule(path, t)
    post = posterior_topk(path, data, x[0], t, k=5)
    naive = torch.softmax(-(x[0] - a * data).pow(2).sum(1) / (2 * b**2), dim=0)
    torch.testing.assert_close(post.weights, naive.sort(descending=True).values[:5])
    torch.testing.assert_close(naive[post.indices], post.weights)
    near = posterior_topk(OTPath(sigma_min=1e-4), data, data[7] * 0.999, 0.999, k=1)
    assert int(near.indices[0]) == 7 and float(near.weights[0]) > 0.999


def test_field_error_values() -> None:
    exact = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    learned = torch.tensor([[3.0, 4.0], [-1.0, 0.0], [0.0, 1.0]])
    err = field_error(learned, exact)
    torch.testing.assert_close(err.abs_error, torch.tensor([0.0, 2.0, 1.0]))
    torch.testing.assert_close(err.rel_error[:2], torch.tensor([0.0, 2.0]))
    assert torch.isfinite(err.rel_error).all() and err.rel_error[2] > 1e6
    torch.testing.assert_close(err.cosine[:2], torch.tensor([1.0, -1.0]))


def test_irreducible_loss_closed_form_ends(cloud: Cloud) -> None:
    """At t = 0 the posterior is the prior, so the gap is the data's total variance; at t = 1 it vanishes."""
    data, _ = cloud
    path = OTPath(sigma_min=1e-4)
    gen = torch.Generator().manual_seed(0)
    loss = irreducible_loss(path, data, torch.tensor([0.0, 1.0], dtype=torch.float64), 40_000, gen)
    variance = (data - data.mean(0)).pow(2).sum(1).mean()
    assert abs(float(loss[0] - variance)) < 0.03 * float(variance)
    assert float(loss[1]) < 1e-6


def test_cfm_loss_of_exact_field_is_irreducible_loss(cloud: Cloud) -> None:
    """The same draws: the exact field's CFM loss is the irreducible loss; a model's exceeds it by FM loss."""
    data, _ = cloud
    path, ts = VPPath(), torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64)
    exact_model = MarginalVelocity(path, data)
    irr = irreducible_loss(path, data, ts, 4000, torch.Generator().manual_seed(3))
    cfm = cfm_loss_by_t(exact_model, path, data, ts, 4000, torch.Generator().manual_seed(3))
    torch.testing.assert_close(cfm, irr)
    shifted = cfm_loss_by_t(lambda x, t: exact_model(x, t) + 0.5, path, data, ts, 4000, torch.Generator())
    # E||v - target||^2 = irreducible + E||v - u||^2 = irreducible + 2 * 0.5^2 (up to Monte Carlo error)
    assert torch.allclose(shifted - irr, torch.full_like(irr, 0.5), rtol=0.0, atol=0.15 * float(irr.max()))


def test_marginal_velocity_with_mixed_times(cloud: Cloud) -> None:
    data, x = cloud
    path = OTPath()
    t = torch.tensor([0.2, 0.7] * (x.shape[0] // 2) + [0.2], dtype=torch.float64)
    got = MarginalVelocity(path, data)(x, t)
    for time in (0.2, 0.7):
        rows = t == time
        torch.testing.assert_close(got[rows], marginal_field(path, data, x[rows], time).velocity)


def test_grid_2d_layout() -> None:
    grid = grid_2d((-1.0, 1.0), (0.0, 3.0), 4)
    assert grid.points.shape == (16, 2)
    cells = grid.points.reshape(4, 4, 2)
    torch.testing.assert_close(cells[2, 1], torch.stack([grid.xs[1], grid.ys[2]]))
    torch.testing.assert_close(grid.xs, torch.linspace(-1.0, 1.0, 4))


@pytest.mark.slow
def test_memory_stays_flat_for_a_million_points() -> None:
    """N = 1e6 points on a 40 x 40 grid: peak RSS grows far less than the N x M logits (6.4 GB) would need."""
    script = textwrap.dedent(
        """
        import json, resource, time, torch
        from flowscope.fields import marginal_field
        from flowscope.maths.grid import grid_2d
        from flowscope.maths.paths import OTPath
        torch.set_num_threads(1)  # memory is the point here; one thread is robust to a busy machine
        data = torch.randn(1_000_000, 2, generator=torch.Generator().manual_seed(0))
        grid = grid_2d((-3.0, 3.0), (-3.0, 3.0), 40).points
        marginal_field(OTPath(), data[:1000], grid, 0.5)  # warm up kernels and allocator
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        field = marginal_field(OTPath(), data, grid, 0.5, chunk_size=8192)
        seconds = time.perf_counter() - start
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        finite = bool(field.velocity.isfinite().all())
        print(json.dumps({"growth": growth, "seconds": seconds, "finite": finite}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["finite"]
    full_logits = 1_000_000 * 1600 * 4
    assert result["growth"] < 200 * 2**20 < full_logits / 30


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(cloud: Cloud) -> None:
    data, x = cloud
    path = VPPath()
    cpu = marginal_field(path, data.float(), x.float(), 0.5)
    gpu = marginal_field(path, data.float().cuda(), x.float().cuda(), 0.5)
    assert gpu.velocity.device.type == "cuda"
    torch.testing.assert_close(gpu.velocity.cpu(), cpu.velocity, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.log_density.cpu(), cpu.log_density, rtol=1e-5, atol=1e-4)


def test_narrow_kernel_over_many_points_matches_float64() -> None:
    """Near t = 1 most logits lie far below their row's max (raised to a floor before exp, so that exp takes
    its fast path): the float32 field still equals the float64 formula."""
    gen = torch.Generator().manual_seed(3)
    data = torch.randn(3000, 2, generator=gen, dtype=torch.float64)
    x = data[:40] * 0.99 + 0.02 * torch.randn(40, 2, generator=gen, dtype=torch.float64)
    path = OTPath()
    for t in (0.9, 0.99):
        got = marginal_field(path, data.float(), x.float(), t)
        a, _, b, _ = _schedule(path, t)
        _assert_field_close(got, naive_marginal(path, data, x, t), torch.float32, _float32_slack(x, a * data, b**2))
