"""Reading training losses back from the device every K steps, agreed across ranks, and the EMA they guard.

Why: `float(loss)` each step makes a CUDA loop wait for the GPU every step. Keeping the step losses on the
device and reading K of them at once (one transfer, and under torchrun one all-reduce that also tells every
rank which ranks saw a NaN/inf) lets the GPU run ahead. The price: a non-finite loss is seen up to K - 1 steps
late, so the EMA is snapshotted at each checked block boundary and restored from there (`EmaSnapshot`).
With K = 1 (the CPU default) the check happens before the EMA absorbs the step, as it always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .distributed import Group, all_sum

__all__ = ["CUDA_CHECK_EVERY", "Checked", "EmaSnapshot", "LossReadback", "check_every"]

#: Steps between loss read-backs on CUDA when the config leaves it open.
CUDA_CHECK_EVERY = 64


def check_every(requested: int | None, device: torch.device) -> int:
    """K: the configured read-back interval, else 1 on CPU/MPS (results as without it) and CUDA_CHECK_EVERY on CUDA."""
    if requested is not None:
        return requested
    return CUDA_CHECK_EVERY if device.type == "cuda" else 1


@dataclass(frozen=True)
class Checked:
    """One read-back: the mean loss over ranks of each step read (in order) and the ranks that saw a non-finite one."""

    losses: list[float]
    bad_ranks: tuple[int, ...]

    @property
    def finite(self) -> bool:
        """Whether every rank's every loss in the block was finite."""
        return not self.bad_ranks and all(math.isfinite(x) for x in self.losses)

    def first_bad(self) -> int:
        """Position in the block of the first step whose loss was non-finite on some rank (0 if none is)."""
        return next((i for i, x in enumerate(self.losses) if not math.isfinite(x)), 0)


class LossReadback:
    """Holds each step's loss on its device until `read` brings a block of them back at once."""

    def __init__(self, every: int, group: Group, device: torch.device) -> None:
        if every < 1:
            raise ValueError(f"check_every must be >= 1, got {every}")
        self.every, self.group, self.device = every, group, device
        self.pending: list[Tensor] = []

    def add(self, loss: Tensor) -> None:
        """Keep a step's loss (detached, no sync)."""
        self.pending.append(loss.detach().reshape(()))

    def due(self, step: int, steps: int) -> bool:
        """Whether this 0-based step ends a block: K losses are pending, or it is the last step."""
        return len(self.pending) >= self.every or step == steps - 1

    def read(self) -> Checked:
        """Read the pending losses: one device-to-host copy, and with several ranks one all-reduce of
        [the losses, a one-hot of "my losses were non-finite"], so all ranks see the same verdict."""
        losses = torch.stack(self.pending).float()
        self.pending = []
        if not self.group.active:
            values = losses.tolist()
            return Checked(values, () if all(math.isfinite(x) for x in values) else (0,))
        flags = torch.zeros(self.group.world_size, device=losses.device)
        flags[self.group.rank] = (~torch.isfinite(losses)).any().float()
        summed = all_sum(torch.cat([losses, flags]), self.group).tolist()
        k = len(summed) - self.group.world_size
        means = [x / self.group.world_size for x in summed[:k]]
        return Checked(means, tuple(r for r, flag in enumerate(summed[k:]) if flag > 0))


class EmaSnapshot:
    """A copy of the EMA weights at the last checked block boundary, to fall back to after a non-finite block."""

    def __init__(self, params: list[Tensor]) -> None:
        self.saved = [p.detach().clone() for p in params]

    def take(self, params: list[Tensor]) -> None:
        """Remember `params` (their losses were all seen finite)."""
        with torch.no_grad():
            torch._foreach_copy_(self.saved, params)

    def restore(self, params: list[Tensor]) -> None:
        """Put the remembered weights back into `params`."""
        with torch.no_grad():
            torch._foreach_copy_(params, self.saved)
