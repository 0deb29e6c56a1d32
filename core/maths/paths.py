"""Probability paths: every path here is affine in (x0, x1), x_t = alpha_t x1 + sigma_t x0 (+ s eps).

Time runs from t = 0 (source, noise) to t = 1 (data), as in Lipman et al. (2023). A Gaussian path of the
paper is the case x0 ~ N(0, I): then mu_t(x1) = alpha_t x1, the std of p_t(x | x1) is sigma_t and (Theorem 3)
u_t(x | x1) = (sigma_t' / sigma_t)(x - mu_t(x1)) + mu_t'(x1). With an arbitrary source the same
coefficients define the interpolant of Tong et al. (2024), whose target is d/dt x_t = alpha_t' x1 + sigma_t' x0.

One abstract class (`AffinePath`) carries all of them; a new path only supplies alpha, sigma and their
closed-form derivatives (checked against autograd in the tests).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["ICFM_SIGMA", "PATHS", "PATH_NAMES", "SINGULAR_EPS", "AffinePath", "CosinePath", "OTPath", "PathSample",
           "VEPath", "VPPath", "make_path", "path_params", "ve_smax_for"]

#: Paths whose sigma_1 = 0 have a conditional field that is singular at t = 1; they train and sample
#: on [0, 1 - SINGULAR_EPS], as the paper's diffusion baselines do.
SINGULAR_EPS = 1e-5
#: The I-CFM interpolant's noise s (normalised units) when none is given: `make_path("icfm")`'s, and that of every
#: model with a stored (non-Gaussian) source (`path_params`), whoever trains it (CLI, Train page, zoo). Above 0
#: because with s = 0 the interpolant's marginal is a sum of Diracs on the stored pairs' segments, so its exact
#: marginal field (`fields.exact.marginal_field_pairs`) is undefined and the explorer cannot draw it; 0.02 (2% of a
#: standardised column's spread) keeps the paths all but the noiseless straight lines, and is the value the zoo's
#: source models were built with (Tong et al. 2024 use 0.1 for their own 2-D sets; `--sigma` sets another).
ICFM_SIGMA = 0.02


@dataclass(frozen=True)
class PathSample:
    """A point on the conditional path and the regression target of the CFM loss.

    Attributes:
        t: times, shape [B].
        x0: source points, shape [B, d].
        x1: data points, shape [B, d].
        x_t: psi_t(x0 | x1) (plus the interpolant's noise, if any), shape [B, d].
        u_t: the conditional velocity d/dt x_t, shape [B, d].
    """

    t: Tensor
    x0: Tensor
    x1: Tensor
    x_t: Tensor
    u_t: Tensor


def _col(t: Tensor | float, like: Tensor) -> Tensor:
    """Times as a column [B, 1] (or a scalar tensor) that broadcasts against points `like` [B, d]."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() == 1 else t


def _rng_device(generator: torch.Generator | None) -> torch.device:
    """Where draws from `generator` are made: its own device (a CUDA generator draws on the GPU), else the CPU."""
    return torch.device("cpu") if generator is None else generator.device


class AffinePath(ABC):
    """x_t = alpha_t x1 + sigma_t x0 + noise_std * eps, with closed-form alpha', sigma'.

    The names are the paper's and Meta's flow_matching's: alpha_t scales the data, sigma_t the source (for a
    standard normal source, the std of p_t(x | x1)); `noise_std` is the I-CFM interpolant's extra noise s.

    Attributes:
        name: registry name, used in checkpoints.
        t_max: the last time trained on and integrated to (1 - SINGULAR_EPS where sigma_1 = 0).
        noise_std: std of the extra Gaussian noise of an I-CFM interpolant (0 for the paper's paths).
    """

    name: str = ""
    t_max: float = 1.0
    noise_std: float = 0.0

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Coefficient of x1 (the data) at time t."""

    @abstractmethod
    def d_alpha(self, t: Tensor) -> Tensor:
        """d alpha_t / dt in closed form."""

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Coefficient of x0 (the source); sigma_t of the paper's Gaussian paths."""

    @abstractmethod
    def d_sigma(self, t: Tensor) -> Tensor:
        """d sigma_t / dt in closed form."""

    @abstractmethod
    def params(self) -> dict[str, float]:
        """The constructor's parameters, stored in checkpoints to rebuild the path."""

    @property
    def prior_std(self) -> float:
        """Std of the isotropic Gaussian drawn at t = 0 (sigma_0): smax for VE, 1 for OT and VP."""
        return float(self.sigma(torch.zeros(())))

    # Gaussian-path view (paper, section 4) -------------------------------------------------------

    def mu(self, x1: Tensor, t: Tensor | float) -> Tensor:
        """mu_t(x1) = alpha_t x1."""
        return _col(self.alpha(torch.as_tensor(t, dtype=x1.dtype, device=x1.device)), x1) * x1

    def psi(self, x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
        """The conditional flow psi_t(x0) = sigma_t x0 + alpha_t x1 (no extra noise)."""
        t = torch.as_tensor(t, dtype=x1.dtype, device=x1.device)
        return _col(self.alpha(t), x1) * x1 + _col(self.sigma(t), x0) * x0

    def pair_velocity(self, x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
        """d/dt psi_t = alpha_t' x1 + sigma_t' x0: the CFM target for a pair (x0, x1)."""
        t = torch.as_tensor(t, dtype=x1.dtype, device=x1.device)
        return _col(self.d_alpha(t), x1) * x1 + _col(self.d_sigma(t), x0) * x0

    def conditional_field(self, x: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
        """u_t(x | x1) = (sigma_t'/sigma_t)(x - mu_t(x1)) + mu_t'(x1) (Theorem 3), Gaussian source.

        `x` and `x1` broadcast against each other; `t` is a scalar or one time per row.
        """
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        a, da = _col(self.alpha(t), x), _col(self.d_alpha(t), x)
        b, db = _col(self.sigma(t), x), _col(self.d_sigma(t), x)
        return (db / b) * (x - a * x1) + da * x1

    def x1_prediction(self, x_t: Tensor, velocity: Tensor, t: Tensor | float) -> Tensor:
        """The end point x1 that a velocity at x_t points to: solving x_t = alpha_t x1 + sigma_t x0 and
        v = alpha_t' x1 + sigma_t' x0 for x1 gives (sigma_t' x_t - sigma_t v) / (sigma_t' alpha_t - sigma_t alpha_t');
        for the OT path with sigma_min = 0 that is x_t + (1 - t) v. With the exact marginal field as v it is the
        posterior mean E[x1 | x_t] (both relations hold in expectation given x_t; no interpolant noise)."""
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        a, da = _col(self.alpha(t), x_t), _col(self.d_alpha(t), x_t)
        b, db = _col(self.sigma(t), x_t), _col(self.d_sigma(t), x_t)
        return (db * x_t - b * velocity) / (db * a - b * da)

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor, generator: torch.Generator | None = None) -> PathSample:
        """Draw x_t for paired (x0, x1) at times t [B] and return it with its CFM target."""
        x_t = self.psi(x0, x1, t)
        if self.noise_std > 0:
            noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=_rng_device(generator))
            noise = noise.to(x_t.device)
            x_t = x_t + self.noise_std * noise
        return PathSample(t=t, x0=x0, x1=x1, x_t=x_t, u_t=self.pair_velocity(x0, x1, t))

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description, inverse of `make_path`."""
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class OTPath(AffinePath):
    """The paper's OT (CondOT) path: mu_t = t x1, sigma_t = 1 - (1 - sigma_min) t.

    I-CFM (Tong et al.) is the same interpolant with sigma_min = 0, any source and extra noise `noise_std`.
    """

    name = "ot"

    def __init__(self, sigma_min: float = 1e-4, noise_std: float = 0.0) -> None:
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"OT path: sigma_min must lie in [0, 1), got {sigma_min}")
        if noise_std < 0:
            raise ValueError(f"OT path: noise_std must be >= 0, got {noise_std}")
        self.sigma_min = float(sigma_min)
        self.noise_std = float(noise_std)
        self.t_max = 1.0 if sigma_min > 0 or noise_std > 0 else 1.0 - SINGULAR_EPS

    def alpha(self, t: Tensor) -> Tensor:
        return t

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return 1.0 - (1.0 - self.sigma_min) * t

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -(1.0 - self.sigma_min))

    def params(self) -> dict[str, float]:
        return {"sigma_min": self.sigma_min, "noise_std": self.noise_std}

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor, generator: torch.Generator | None = None) -> PathSample:
        """The generic sample in two fused ops (the training hot path): u = x1 - (1 - sigma_min) x0,
        x_t = x0 + t u."""
        u_t = torch.sub(x1, x0, alpha=1.0 - self.sigma_min)
        x_t = torch.addcmul(x0, _col(t, x0), u_t)
        if self.noise_std > 0:
            noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=_rng_device(generator))
            noise = noise.to(x_t.device)
            x_t = x_t + self.noise_std * noise
        return PathSample(t=t, x0=x0, x1=x1, x_t=x_t, u_t=u_t)


class VPPath(AffinePath):
    """The paper's VP diffusion path: mu_t = a(1-t) x1, sigma_t = sqrt(1 - a(1-t)^2).

    a(r) = exp(-T(r)/2), T(r) = beta_min r + (beta_max - beta_min) r^2 / 2. sigma_1 = 0, so t_max = 1 - eps.
    """

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        if not 0.0 < beta_min <= beta_max:
            raise ValueError(f"VP path: need 0 < beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.t_max = 1.0 - SINGULAR_EPS

    def _T(self, t: Tensor) -> Tensor:
        """T(1 - t) = beta_min r + (beta_max - beta_min) r^2 / 2 with r = 1 - t."""
        r = 1.0 - t
        return self.beta_min * r + 0.5 * (self.beta_max - self.beta_min) * r**2

    def _dT(self, t: Tensor) -> Tensor:
        """T'(r) at r = 1 - t (so d/dt T(1 - t) = -T'(r))."""
        return self.beta_min + (self.beta_max - self.beta_min) * (1.0 - t)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * self._T(t))

    def d_alpha(self, t: Tensor) -> Tensor:
        # d/dt a(1 - t) = a(1 - t) T'(1 - t) / 2.
        return self.alpha(t) * 0.5 * self._dT(t)

    def sigma(self, t: Tensor) -> Tensor:
        # 1 - a^2 = -expm1(-T): exact near t = 1, where a -> 1 and 1 - a^2 would cancel.
        return torch.sqrt(-torch.expm1(-self._T(t)))

    def d_sigma(self, t: Tensor) -> Tensor:
        # d/dt sqrt(1 - a^2) = -a a' / sigma = -exp(-T) T' / (2 sigma).
        return -torch.exp(-self._T(t)) * 0.5 * self._dT(t) / self.sigma(t)

    def params(self) -> dict[str, float]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}


class VEPath(AffinePath):
    """The paper's VE diffusion path: mu_t = x1, sigma_t = smin (smax / smin)^(1 - t).

    The prior at t = 0 is about N(0, smax^2 I); pick smax from the data's scale (`ve_smax_for`).
    """

    name = "ve"

    def __init__(self, smin: float = 0.01, smax: float = 10.0) -> None:
        if not 0.0 < smin < smax:
            raise ValueError(f"VE path: need 0 < smin < smax, got {smin}, {smax}")
        self.smin = float(smin)
        self.smax = float(smax)
        self._log_ratio = math.log(self.smax / self.smin)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.smin * torch.exp(self._log_ratio * (1.0 - t))

    def d_sigma(self, t: Tensor) -> Tensor:
        return -self._log_ratio * self.sigma(t)

    def params(self) -> dict[str, float]:
        return {"smin": self.smin, "smax": self.smax}


class CosinePath(AffinePath):
    """Cosine interpolant x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0 (plus optional noise)."""

    name = "cosine"

    def __init__(self, noise_std: float = 0.0) -> None:
        if noise_std < 0:
            raise ValueError(f"cosine path: noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.t_max = 1.0 if noise_std > 0 else 1.0 - SINGULAR_EPS

    def alpha(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def params(self) -> dict[str, float]:
        return {"noise_std": self.noise_std}


PATHS: dict[str, type[AffinePath]] = {cls.name: cls for cls in (OTPath, VPPath, VEPath, CosinePath)}
#: Every name `make_path` accepts: the registry's and the I-CFM alias.
PATH_NAMES: tuple[str, ...] = (*PATHS, "icfm")


def make_path(name: str, **params: float) -> AffinePath:
    """Build a path by registry name ("ot", "vp", "ve", "cosine") and its parameters.

    "icfm" is accepted as the I-CFM alias of the OT interpolant with sigma_min = 0 and noise `sigma` (default
    ICFM_SIGMA).
    """
    if name == "icfm":
        return OTPath(sigma_min=0.0, noise_std=float(params.get("sigma", params.get("noise_std", ICFM_SIGMA))))
    if name not in PATHS:
        raise ValueError(f"unknown path {name!r}; expected one of {sorted(PATHS)} or 'icfm'")
    try:
        return PATHS[name](**params)
    except TypeError as err:
        raise ValueError(f"path {name!r}: bad parameters {params}: {err}") from None


def path_params(name: str, sigma: float | None = None, *, stored_source: bool = False) -> dict[str, float]:
    """The parameters of path `name` that one sigma setting means (the CLI's --sigma, the Train page's, the zoo's):
    I-CFM's noise for "icfm" (ICFM_SIGMA when None), OT's sigma_min for "ot", else the path's `sigma`; with a
    stored source, a path that takes interpolant noise ("ot", "cosine") gets ICFM_SIGMA of it, so that every
    stored-source model has a defined exact marginal field (give "icfm" with sigma 0 for none)."""
    params: dict[str, float] = {}
    if name == "icfm":
        return {"sigma": ICFM_SIGMA if sigma is None else float(sigma)}
    if sigma is not None:
        params["sigma_min" if name == "ot" else "sigma"] = float(sigma)
    if stored_source and name in ("ot", "cosine"):
        params["noise_std"] = ICFM_SIGMA
    return params


def ve_smax_for(x1: Tensor, max_points: int = 2000) -> float:
    """smax for the VE path: the largest pairwise distance in (a subsample of) the data (Song & Ermon 2020)."""
    sub = x1[:max_points].double()
    return float(torch.cdist(sub, sub).max().clamp_min(1.0))
