"""The isotropic Gaussian log-density, written once: priors, conditional paths and kernel averages use it."""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["log_normalizer", "log_prob"]


def log_normalizer(d: int, var: float) -> float:
    """log of N(., var I)'s normalising constant in d dimensions: -d/2 log(2 pi var)."""
    return -0.5 * d * math.log(2.0 * math.pi * var)


def log_prob(x: Tensor, std: float) -> Tensor:
    """log N(x; 0, std^2 I) per row of x [B, d], shape [B]."""
    return -0.5 * x.pow(2).sum(1) / std**2 + log_normalizer(x.shape[1], std**2)
