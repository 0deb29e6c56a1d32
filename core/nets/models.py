"""Velocity models v_theta(x, t) and the affine data normalisation stored with them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from .init import fresh
from .unet import UNetConfig, VelocityUNet

__all__ = ["ACTIVATIONS", "MAX_CLASSES", "FourierFeatures", "MLPConfig", "NetConfig", "SinusoidalTimeEmbedding",
           "VelocityMLP", "VelocityNet", "architecture", "build_net", "net_type", "sized"]

#: Most classes a conditional model takes (more is a regression target, not a label).
MAX_CLASSES = 256

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
    #: 64 (was 128 until issue 18): a quarter of the matmul work of a step, which the profile of the default
    #: training found to be ~55% of its time; at 8,000 steps W2 stays within 1.11x the floor on the toys.
    width: int = 64
    depth: int = 3
    activation: str = "silu"
    time_features: int = 2
    fourier_features: int = 32
    fourier_scale: float = 4.0
    #: Classes of a conditional model (0: unconditional); index num_classes is the "no label" token.
    num_classes: int = 0

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
        if not 0 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must lie in [0, {MAX_CLASSES}], got {self.num_classes}")

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
        self.register_buffer("freqs", torch.empty(n_frequencies), persistent=False)
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Set the fixed frequencies f_k (nothing is drawn: `generator` is not used)."""
        n = int(self.freqs.numel())
        with torch.no_grad():
            self.freqs.copy_(2.0 * math.pi * (2.0 ** torch.arange(n, dtype=torch.float32)) / 2.0)

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
        self.scale = scale
        self.register_buffer("frequencies", torch.empty(dim, count))
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Draw B ~ N(0, scale^2) from `generator` (None: torch's global one)."""
        nn.init.normal_(self.frequencies, std=self.scale, generator=generator)

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
    uses.

    A conditional model (config.num_classes > 0) also takes labels y [B] (class indices, or num_classes for
    "no label"): a learned embedding of y is added to the first layer's pre-activation, i.e. to the time
    embedding after its projection, as image U-Nets add a class embedding to their time embedding.
    """

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
        self.label_embedding = nn.Embedding(config.num_classes + 1, config.width) if config.num_classes else None
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Draw the label embedding from N(0, 0.1^2) with `generator` (None: torch's global one); its layers keep
        PyTorch's default initialisation."""
        if self.label_embedding is not None:
            nn.init.normal_(self.label_embedding.weight, std=0.1, generator=generator)

    @property
    def null_label(self) -> int:
        """The "no label" token of a conditional model (its unconditional field)."""
        return self.config.num_classes

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """v_theta(x [B, d], t [B] or scalar[, y [B]]) -> [B, d]; y None is "no label" (or an unconditional model)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        features = [x, self.fourier(x), self.time_embedding(t)] if self.fourier else [x, self.time_embedding(t)]
        inputs = torch.cat(features, dim=1)
        if self.label_embedding is None:
            return self.net(inputs)
        if y is None:
            y = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
        first, *rest = list(self.net.children())
        hidden = first(inputs) + self.label_embedding(y.to(x.device).expand(x.shape[0]))
        for layer in rest:
            hidden = layer(hidden)
        return hidden


#: Every velocity network flowscope builds: v(x [B, d], t [B] or scalar[, y [B]]) -> [B, d], with `config.dim`,
#: `config.num_classes` and `null_label`; the U-Net reshapes its flat input to the image shape.
VelocityNet = VelocityMLP | VelocityUNet
#: The architecture of a `VelocityNet`, stored in checkpoints with its type name (`net_type`).
NetConfig = MLPConfig | UNetConfig


def build_net(config: NetConfig, generator: torch.Generator | None = None) -> VelocityNet:
    """A fresh network of the architecture `config` describes, its initial weights drawn from `generator` alone
    (a training's own: nothing is drawn from torch's global generator then); None draws them from the global one."""
    return fresh(lambda: architecture(config), generator)


def architecture(config: NetConfig) -> VelocityNet:
    """The modules of the network `config` describes, as their constructors leave them: built under
    `torch.device("meta")` it sizes a config (names and shapes of its state dict) without allocating anything."""
    return VelocityUNet(config) if isinstance(config, UNetConfig) else VelocityMLP(config)


def sized(config: NetConfig, dim: int, num_classes: int) -> NetConfig:
    """The architecture for `dim` inputs and `num_classes` classes: an MLP takes the dimension; a U-Net's is its
    image's (C * H * W), which the caller checks."""
    if isinstance(config, UNetConfig):
        return replace(config, num_classes=num_classes)
    return replace(config, dim=dim, num_classes=num_classes)


def net_type(config: NetConfig) -> str:
    """The architecture's name in checkpoints: "mlp" or "unet"."""
    return "unet" if isinstance(config, UNetConfig) else "mlp"




