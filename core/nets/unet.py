"""A small U-Net velocity model v_theta(x, t[, y]) for images, with the interface of every flowscope model.

The model takes flattened images x [B, C*H*W] (paths, losses, couplings and exact fields act on flat
vectors, so nothing else changes for images) and reshapes them to [B, C, H, W] inside. The architecture is
the DDPM / ADM family at a small size (Ho et al. 2020; Dhariwal & Nichol 2021), as in the paper's image
experiments: residual blocks with group norm, a sinusoidal time embedding through an MLP, a learned class
embedding added to it (index num_classes is the "no label" token of classifier-free guidance, as in
`VelocityMLP`), optional self-attention at the lowest resolution, and a zero-initialised output layer so a
fresh model starts from the zero field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["MAX_IMAGE_SIDE", "Dropout", "UNetConfig", "VelocityUNet", "use_generator"]

#: Largest image side (pixels) a U-Net is built for here: flowscope trains on CPUs too.
MAX_IMAGE_SIDE = 256


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of `VelocityUNet`; stored in checkpoints (model type "unet") to rebuild the model.

    Attributes:
        channels, height, width: the image shape (C, H, W); the model's dim is C * H * W.
        base: feature channels at full resolution.
        multipliers: channels of each resolution level as multiples of `base`; each level after the first
            halves the resolution (rounding up, so odd sizes work).
        blocks: residual blocks per level on the way down (one more on the way up, for the skips).
        attention: a self-attention block at the lowest resolution.
        groups: group-norm groups (the largest divisor of a layer's channels up to this).
        dropout: inside residual blocks, during training.
        num_classes: classes of a conditional model (0: unconditional).
    """

    channels: int
    height: int
    width: int
    base: int = 32
    multipliers: tuple[int, ...] = (1, 2)
    blocks: int = 1
    attention: bool = True
    groups: int = 8
    dropout: float = 0.0
    num_classes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "multipliers", tuple(int(m) for m in self.multipliers))
        checks = {
            f"image shape must be C, H, W >= 1 with C <= 4 and sides <= {MAX_IMAGE_SIDE}":
                1 <= self.channels <= 4 and 1 <= self.height <= MAX_IMAGE_SIDE and 1 <= self.width <= MAX_IMAGE_SIDE,
            "base must be >= 1": self.base >= 1,
            "multipliers must be one or more integers >= 1": len(self.multipliers) >= 1
                                                             and all(m >= 1 for m in self.multipliers),
            "blocks must be >= 1": self.blocks >= 1,
            "groups must be >= 1": self.groups >= 1,
            "dropout must lie in [0, 1)": 0.0 <= self.dropout < 1.0,
            "num_classes must lie in [0, 256]": 0 <= self.num_classes <= 256,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError("U-Net config: " + "; ".join(failed))

    @property
    def dim(self) -> int:
        """The flattened dimension C * H * W that samplers, paths and fields see."""
        return self.channels * self.height * self.width

    @property
    def shape(self) -> tuple[int, int, int]:
        """The image shape (C, H, W)."""
        return self.channels, self.height, self.width

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        fields = asdict(self)
        fields["multipliers"] = list(self.multipliers)
        return fields


def _groups(channels: int, most: int) -> int:
    """The largest divisor of `channels` that is at most `most` (group norm needs groups | channels)."""
    if most >= channels:
        return channels
    return next(g for g in range(max(most, 1), 0, -1) if channels % g == 0)  # from the top: a few steps, not `most`


def _zero(module: nn.Module) -> None:
    """Set the module's parameters to 0 (residual branches and the output start as identity / zero)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)


class Dropout(nn.Module):
    """Dropout whose masks are drawn from `generator` when one is set (a training sets its own, `use_generator`,
    so that trainings running at once do not share torch's global generator); from the global one otherwise."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        """x with each value zeroed with probability p and the rest scaled by 1 / (1 - p) (training only)."""
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.rand(x.shape, generator=self.generator, device=self.generator.device) >= self.p
        return x * keep.to(x.device, x.dtype) / (1.0 - self.p)


def use_generator(net: nn.Module, generator: torch.Generator | None) -> None:
    """Draw the dropout masks of `net` from `generator` (None: torch's global generator again)."""
    for module in net.modules():
        if isinstance(module, Dropout):
            module.generator = generator


class TimeEmbedding(nn.Module):
    """t in [0, 1] -> sin/cos of 1000 t at geometric frequencies (the transformer embedding DDPM uses for its
    1000 steps), then an MLP to `out` features."""

    frequencies: Tensor

    def __init__(self, features: int, out: int) -> None:
        super().__init__()
        half = max(1, features // 2)
        self.register_buffer("frequencies", torch.empty(half), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, out), nn.SiLU(), nn.Linear(out, out))
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Set the fixed geometric frequencies (nothing is drawn: `generator` is not used)."""
        half = int(self.frequencies.numel())
        with torch.no_grad():
            self.frequencies.copy_(torch.exp(-math.log(10_000.0) * torch.arange(half) / half))

    def forward(self, t: Tensor) -> Tensor:
        """Embed times [B] into [B, out]."""
        angles = 1000.0 * t.reshape(-1, 1) * self.frequencies.to(t.dtype)
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))


class ResidualBlock(nn.Module):
    """GN-SiLU-conv, plus the projected time (and label) embedding, GN-SiLU-dropout-conv, plus a skip."""

    def __init__(self, cin: int, cout: int, embed: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin, groups), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.embed = nn.Linear(embed, cout)
        self.norm2 = nn.GroupNorm(_groups(cout, groups), cout)
        self.dropout = Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Zero the residual branch's last convolution (the block starts as its skip); the rest keeps PyTorch's
        default initialisation."""
        _zero(self.conv2)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x [B, cin, H, W], emb [B, embed] -> [B, cout, H, W]."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, added to it (a residual branch)."""

    def __init__(self, channels: int, groups: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = _groups(channels, heads)
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Zero the output projection (the block starts as the identity)."""
        _zero(self.out)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> [B, C, H, W]."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C / heads]
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class VelocityUNet(nn.Module):
    """A U-Net velocity field on flattened images: forward(x [B, C*H*W], t [B] or scalar[, y [B]]) -> [B, C*H*W].

    A conditional model (config.num_classes > 0) adds a learned embedding of y (class indices, or num_classes
    for "no label") to the time embedding, so every residual block sees it.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base, groups, dropout = config.base, config.groups, config.dropout
        embed = 4 * base
        self.time_embedding = TimeEmbedding(base, embed)
        self.label_embedding = nn.Embedding(config.num_classes + 1, embed) if config.num_classes else None
        self.stem = nn.Conv2d(config.channels, base, 3, padding=1)
        widths = [base * m for m in config.multipliers]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, channels = [base], base
        for level, width in enumerate(widths):
            for _ in range(config.blocks):
                self.down.append(ResidualBlock(channels, width, embed, groups, dropout))
                channels = width
                skips.append(channels)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
                skips.append(channels)
        self.middle = nn.ModuleList([ResidualBlock(channels, channels, embed, groups, dropout),
                                     ResidualBlock(channels, channels, embed, groups, dropout)])
        self.attention = SelfAttention(channels, groups) if config.attention else None
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(config.blocks + 1):
                self.up.append(ResidualBlock(channels + skips.pop(), width, embed, groups, dropout))
                channels = width
            if level > 0:
                self.upsample.append(nn.Conv2d(channels, channels, 3, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(_groups(channels, groups), channels), nn.SiLU(),
                                  nn.Conv2d(channels, config.channels, 3, padding=1))
        self.init_weights(None)

    def init_weights(self, generator: torch.Generator | None) -> None:
        """Zero the output convolution (a fresh model is the zero field); the rest keeps PyTorch's defaults."""
        _zero(self.head[-1])

    @property
    def null_label(self) -> int:
        """The "no label" token of a conditional model (its unconditional field)."""
        return self.config.num_classes

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """v_theta(x [B, C*H*W], t [B] or scalar[, y [B]]) -> [B, C*H*W]; y None is "no label"."""
        config = self.config
        batch = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(batch)
        emb = self.time_embedding(t)
        if self.label_embedding is not None:
            if y is None:
                y = torch.full((batch,), self.null_label, dtype=torch.long, device=x.device)
            emb = emb + self.label_embedding(y.to(x.device).expand(batch))
        h = self.stem(x.reshape(batch, *config.shape))
        skips = [h]
        blocks = iter(self.down)
        for level in range(len(config.multipliers)):
            for _ in range(config.blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < len(config.multipliers) - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.middle[0](h, emb)
        if self.attention is not None:
            h = self.attention(h)
        h = self.middle[1](h, emb)
        blocks = iter(self.up)
        for level in reversed(range(len(config.multipliers))):
            for _ in range(config.blocks + 1):
                skip = skips.pop()
                h = next(blocks)(torch.cat([h, skip], dim=1), emb)
            if level > 0:
                size = skips[-1].shape[-2:]  # the next skip's size: exact for odd sides too
                h = self.upsample[len(config.multipliers) - 1 - level](F.interpolate(h, size=size, mode="nearest"))
        return self.head(h).reshape(batch, -1).to(x.dtype)
