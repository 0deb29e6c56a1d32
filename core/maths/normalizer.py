"""The affine per-column normalisation between data and model coordinates, stored with every model."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ['CONSTANT_TOLERANCE', 'Normalizer']


#: A column whose std is below this (relative to 1 + |mean|) is a constant of the model.
CONSTANT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Normalizer:
    """Diagonal affine map between data x [..., D] and model coordinates z [..., d]: z = (x - mean) / scale.

    One scale per column (`fit(per_column=True)`), so a column of values ~1000 does not set the scale of
    the others; the paper's Gaussian paths are isotropic in z, and fields map back exactly: dx/dt = scale *
    dz/dt elementwise, log p(x) = log p(z) - sum log scale. Columns listed in `constant` (zero variance,
    e.g. pixels that are always 0) are constants of the model: encode drops them (d = D - len(constant)),
    decode restores their value, and their velocity is 0.

    Attributes:
        mean: per data column [D].
        scale: per data column [D] (1 for constant columns).
        constant: indices of the constant columns, increasing.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    constant: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.scale) != len(self.mean):
            raise ValueError(f"normaliser: {len(self.mean)} means but {len(self.scale)} scales")
        if not all(s > 0 and math.isfinite(s) for s in self.scale):
            raise ValueError(f"normaliser: every scale must be > 0 and finite, got {self.scale}")
        if list(self.constant) != sorted(set(self.constant)) or any(not 0 <= c < len(self.mean) for c in self.constant):
            raise ValueError(f"normaliser: constant columns {self.constant} must be increasing indices below "
                             f"{len(self.mean)}")
        if len(self.constant) == len(self.mean):
            raise ValueError("normaliser: every column is constant; there is nothing to model")

    @classmethod
    def fit(cls, x: Tensor, *, per_column: bool = True, keep_constant: bool = False) -> Normalizer:
        """Mean and std of each column of `x` [N, D] (or one std for all, the root mean variance).

        Columns of zero variance become constants of the model unless `keep_constant` (then their scale is
        1 and the flow carries them, as it must when a stored source varies where the data do not).
        """
        xd = x.double()
        mean = xd.mean(dim=0)
        std = xd.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
        constant = [] if keep_constant else [
            j for j in range(x.shape[1]) if float(std[j]) <= CONSTANT_TOLERANCE * (1.0 + abs(float(mean[j])))]
        varying = [j for j in range(x.shape[1]) if j not in constant]
        if not varying:
            constant, varying = [], list(range(x.shape[1]))
        if per_column:
            scale = [float(s) if s > 0 and math.isfinite(s) else 1.0 for s in std.tolist()]
        else:
            pooled = float(std[varying].pow(2).mean().sqrt())
            scale = [pooled if pooled > 0 and math.isfinite(pooled) else 1.0] * x.shape[1]
        for j in constant:
            scale[j] = 1.0
        return cls(mean=tuple(float(m) for m in mean), scale=tuple(scale), constant=tuple(constant))

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        """The map that leaves coordinates as they are."""
        return cls(mean=(0.0,) * dim, scale=(1.0,) * dim)

    @property
    def data_dim(self) -> int:
        """D, the number of data columns."""
        return len(self.mean)

    @property
    def dim(self) -> int:
        """d, the dimension the flow works in (data columns that are not constant)."""
        return len(self.mean) - len(self.constant)

    @functools.cached_property
    def _varying(self) -> tuple[Tensor, Tensor, Tensor]:
        """(indices of the varying columns, their means, their scales) as CPU tensors."""
        keep = [j for j in range(self.data_dim) if j not in set(self.constant)]
        index = torch.tensor(keep, dtype=torch.long)
        mean = torch.tensor(self.mean, dtype=torch.float64)
        scale = torch.tensor(self.scale, dtype=torch.float64)
        return index, mean[index], scale[index]

    def _parts(self, like: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Index (None when no column is constant), means and scales of the varying columns, like `like`."""
        index, mean, scale = self._varying
        kept = None if not self.constant else index.to(like.device)
        return kept, mean.to(like.device, like.dtype), scale.to(like.device, like.dtype)

    def encode(self, x: Tensor) -> Tensor:
        """Data [..., D] -> model coordinates [..., d]."""
        index, mean, scale = self._parts(x)
        if index is not None:
            x = x.index_select(-1, index)
        return (x - mean) / scale

    def _scatter(self, z: Tensor, fill: Tensor) -> Tensor:
        """Model-coordinate columns [..., d] placed among constant ones `fill` [D] -> [..., D]."""
        index, _, _ = self._parts(z)
        out = fill.to(z.device, z.dtype).expand(*z.shape[:-1], self.data_dim).clone()
        out[..., index] = z
        return out

    def decode(self, z: Tensor) -> Tensor:
        """Model [..., d] -> data coordinates [..., D] (constant columns take their value)."""
        index, mean, scale = self._parts(z)
        x = z * scale + mean
        return x if index is None else self._scatter(x, torch.tensor(self.mean, dtype=torch.float64))

    def decode_velocity(self, u: Tensor) -> Tensor:
        """A velocity dz/dt [..., d] as dx/dt [..., D] in data coordinates (0 in constant columns)."""
        index, _, scale = self._parts(u)
        v = u * scale
        return v if index is None else self._scatter(v, torch.zeros(self.data_dim, dtype=torch.float64))

    def encode_velocity(self, v: Tensor) -> Tensor:
        """A velocity dx/dt [..., D] in data coordinates as dz/dt [..., d] (constant columns dropped)."""
        index, _, scale = self._parts(v)
        if index is not None:
            v = v.index_select(-1, index)
        return v / scale

    @property
    def log_det(self) -> float:
        """log |det dx/dz| of decode over the varying columns: log p(x) = log p(z) - log_det."""
        return float(sum(math.log(self.scale[j]) for j in range(self.data_dim) if j not in set(self.constant)))

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """Plain dict for JSON."""
        return {"mean": list(self.mean), "scale": list(self.scale), "constant": list(self.constant)}
