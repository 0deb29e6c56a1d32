"""Velocity models v_theta(x, t) and the affine data normalisation stored with them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "FourierFeatures", "MLPConfig", "Normalizer", "SinusoidalTimeEmbedding", "VelocityMLP"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


@dataclass(frozen=True)
class MLPConfig:
    """Architecture of `VelocityMLP`; stored in checkpoints to rebuild the model."""

    dim: int
    width: int = 128
    depth: int = 3
    activation: str = "silu"
    time_features: int = 2
    fourier_features: int = 32
    fourier_scale: float = 4.0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"model dim must be >= 1, got {self.dim}")
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"model width and depth must be >= 1, got {self.width}, {self.depth}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}")
        if self.time_features < 0:
            raise ValueError(f"time_features must be >= 0, got {self.time_features}")
        if self.fourier_features < 0:
            raise ValueError(f"fourier_features must be >= 0, got {self.fourier_features}")
        if not (self.fourier_scale > 0 and math.isfinite(self.fourier_scale)):
            raise ValueError(f"fourier_scale must be > 0 and finite, got {self.fourier_scale}")

    def to_dict(self) -> dict[str, int | float | str]:
        """Plain dict for JSON."""
        return asdict(self)


class SinusoidalTimeEmbedding(nn.Module):
    """t -> [t, sin(2 pi f_k t), cos(2 pi f_k t)] with fixed frequencies f_k = 2^k / 2 (k < n).

    Few, low frequencies by default (MLPConfig.time_features = 2): high ones let the network fit each
    t-slice's noise separately; on the VP path, whose field lives near t = 1, 8 frequencies left the
    learned field ~0 there (circles: W2 4.4x the floor, 1.3x with 2), and they raised dopri5's NFE.
    """

    freqs: Tensor

    def __init__(self, n_frequencies: int) -> None:
        super().__init__()
        freqs = 2.0 * math.pi * (2.0 ** torch.arange(n_frequencies, dtype=torch.float32)) / 2.0
        self.register_buffer("freqs", freqs, persistent=False)

    @property
    def out_features(self) -> int:
        """Width of the embedding: t itself plus a sin and a cos per frequency."""
        return 1 + 2 * int(self.freqs.numel())

    def forward(self, t: Tensor) -> Tensor:
        """Embed times [B] into [B, out_features]."""
        t = t.reshape(-1, 1)
        angles = t * self.freqs.to(t.dtype)
        return torch.cat([t, torch.sin(angles), torch.cos(angles)], dim=1)


class FourierFeatures(nn.Module):
    """x -> [sin(x B), cos(x B)] with B ~ N(0, scale^2) [d, m] drawn once (Tancik et al., NeurIPS 2020).

    A plain MLP on raw coordinates is biased towards smooth functions of x: on rings (four thin circles)
    it learned a blurred disk whatever its width, depth or training length, because the field near t = 1
    flips sign between rings 0.5 normalised units apart. These features let it resolve such detail. B is a
    saved buffer, so a checkpoint carries the exact features it was trained with.
    """

    frequencies: Tensor

    def __init__(self, dim: int, count: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn(dim, count) * scale)

    @property
    def out_features(self) -> int:
        """Width of the embedding: a sin and a cos per frequency."""
        return 2 * int(self.frequencies.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        """Embed points [B, d] into [B, out_features]."""
        angles = x @ self.frequencies.to(x.dtype)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class VelocityMLP(nn.Module):
    """An MLP velocity field v_theta(x, t) on concat(x, fourier(x), embed(t)); the interface every sampler
    uses."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.time_embedding = SinusoidalTimeEmbedding(config.time_features)
        self.fourier = (FourierFeatures(config.dim, config.fourier_features, config.fourier_scale)
                        if config.fourier_features else None)
        act = ACTIVATIONS[config.activation]
        inputs = config.dim + self.time_embedding.out_features + (self.fourier.out_features if self.fourier else 0)
        layers: list[nn.Module] = [nn.Linear(inputs, config.width), act()]
        for _ in range(config.depth - 1):
            layers += [nn.Linear(config.width, config.width), act()]
        layers.append(nn.Linear(config.width, config.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """v_theta(x [B, d], t [B] or scalar) -> [B, d]."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        features = [x, self.fourier(x), self.time_embedding(t)] if self.fourier else [x, self.time_embedding(t)]
        return self.net(torch.cat(features, dim=1))


@dataclass(frozen=True)
class Normalizer:
    """Isotropic affine map z = (x - mean) / scale between data and model coordinates.

    One scalar scale keeps the paper's isotropic Gaussian paths isotropic in data coordinates, so fields
    map back by a single factor: dx/dt = scale * dz/dt.
    """

    mean: tuple[float, ...]
    scale: float

    @classmethod
    def fit(cls, x: Tensor) -> Normalizer:
        """Mean per dimension and the root of the average per-dimension variance of `x` [N, d]."""
        xd = x.double()
        scale = float(xd.var(dim=0, unbiased=False).mean().sqrt()) if x.shape[0] > 1 else 1.0
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0
        return cls(mean=tuple(float(m) for m in xd.mean(dim=0)), scale=scale)

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        """The map that leaves coordinates as they are."""
        return cls(mean=(0.0,) * dim, scale=1.0)

    def _mean(self, like: Tensor) -> Tensor:
        return torch.tensor(self.mean, dtype=like.dtype, device=like.device)

    def encode(self, x: Tensor) -> Tensor:
        """Data -> model coordinates."""
        return (x - self._mean(x)) / self.scale

    def decode(self, z: Tensor) -> Tensor:
        """Model -> data coordinates."""
        return z * self.scale + self._mean(z)

    def decode_velocity(self, u: Tensor) -> Tensor:
        """A velocity dz/dt in model coordinates as dx/dt in data coordinates (the map's linear part)."""
        return u * self.scale

    @property
    def log_det(self) -> float:
        """log |det dx/dz| of decode: data-coordinate log-densities are model-coordinate ones minus this."""
        return len(self.mean) * math.log(self.scale)

    def to_dict(self) -> dict[str, list[float] | float]:
        """Plain dict for JSON."""
        return {"mean": list(self.mean), "scale": self.scale}
