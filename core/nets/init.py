"""Initial weights drawn from an explicit `torch.Generator`, never from torch's process-wide one.

A training draws its network's initial weights from its own generator (seeded by its config's seed), so two
trainings running at once in one process (the explorer's worker threads) neither disturb each other's
initialisation nor move torch's global random state. The distributions are PyTorch's defaults for its layers,
then each flowscope module's own choices (`init_weights`), so a network built here trains as one built the
usual way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

__all__ = ["default_init", "fresh", "initialise"]

M = TypeVar("M", bound=nn.Module)


def default_init(layer: nn.Module, generator: torch.Generator | None) -> None:
    """Draw the parameters of one torch layer (not its children) as its own `reset_parameters` would, from
    `generator` (None: torch's global one). TypeError for a layer with parameters or buffers this does not know
    and that has no `init_weights` of its own (it would otherwise keep uninitialised memory)."""
    if isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if layer.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    elif isinstance(layer, nn.Embedding):
        nn.init.normal_(layer.weight, generator=generator)
        if layer.padding_idx is not None:
            with torch.no_grad():
                layer.weight[layer.padding_idx].fill_(0)
    elif isinstance(layer, (nn.GroupNorm, nn.LayerNorm)):
        if layer.weight is not None:
            nn.init.ones_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    elif not hasattr(layer, "init_weights") and (any(True for _ in layer.parameters(recurse=False))
                                                 or any(True for _ in layer.buffers(recurse=False))):
        raise TypeError(f"no initialisation known for {type(layer).__name__}: give it an init_weights(generator)")


def initialise(module: nn.Module, generator: torch.Generator | None) -> None:
    """Draw every parameter and buffer of `module` from `generator`: each torch layer's default first, then the
    `init_weights(generator)` of every module that has one (outer before inner), which may override its
    children's (e.g. zero a residual branch's last layer)."""
    for layer in module.modules():
        default_init(layer, generator)
    for layer in module.modules():
        own = getattr(layer, "init_weights", None)
        if callable(own):
            own(generator)


def fresh(build: Callable[[], M], generator: torch.Generator | None) -> M:
    """The module `build()` makes, on the CPU, its weights drawn from `generator` alone: it is built on the meta
    device (no draws; a thread-local setting), then given memory and initialised (`initialise`)."""
    with torch.device("meta"):
        module = build()
    module.to_empty(device="cpu")
    with torch.no_grad():
        initialise(module, generator)
    return module
