"""Regular 2-D grids for heatmaps, quiver plots and density grids."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ['Grid2D', 'grid_2d']


class Grid2D(NamedTuple):
    """A regular 2D grid: points[j * n + i] = (xs[i], ys[j]), so values.reshape(n, n) has rows along y."""

    points: Tensor
    xs: Tensor
    ys: Tensor


def grid_2d(
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Grid2D:
    """A regular n x n grid over xlim x ylim for heatmaps and quiver plots (x varies fastest)."""
    xs = torch.linspace(xlim[0], xlim[1], n, dtype=dtype, device=device)
    ys = torch.linspace(ylim[0], ylim[1], n, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return Grid2D(points=torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), xs=xs, ys=ys)
