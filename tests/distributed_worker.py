"""One rank of the distributed tests, started by torchrun (tests/test_distributed.py); not a test module itself.

    worker.py train OUT STEPS BATCH   flowscope.train in a user's torchrun script, twice with the same seed; each
                                      rank writes OUT/rank{r}.safetensors and OUT/rank{r}-again.safetensors
    worker.py nan STEP CLI-ARGS...    `flowscope train CLI-ARGS`, with the loss of rank 1 NaN from step STEP on
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import flowscope.training.loop
from flowscope import MLPConfig, TrainConfig, train
from flowscope.cli.commands import main
from flowscope.data.datasets import make_dataset
from flowscope.io import checkpoint

__all__: list[str] = []


def _train(out: Path, steps: int, batch: int) -> int:
    """Train the same model twice under torchrun; every rank saves both results."""
    rank = int(os.environ["RANK"])
    data = torch.from_numpy(make_dataset("moons", 4000, seed=0))
    config = TrainConfig(steps=steps, batch_size=batch, seed=0, device="cpu")
    for name in ("", "-again"):
        result = train(data, model=MLPConfig(dim=2, width=64, depth=2), config=config, dataset="moons")
        checkpoint.save(result.model, out / f"rank{rank}{name}.safetensors")
    return 0


def _nan_from(step: int) -> None:
    """Make rank 1's loss NaN from its `step`-th call on (a fault on one rank only)."""
    if os.environ["RANK"] != "1":
        return
    calls = [0]
    real = flowscope.training.loop.cfm_loss

    def poisoned(*args: object, **kwargs: object) -> torch.Tensor:
        calls[0] += 1
        loss = real(*args, **kwargs)  # type: ignore[arg-type]
        return loss * float("nan") if calls[0] >= step else loss

    flowscope.training.loop.cfm_loss = poisoned


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "train":
        sys.exit(_train(Path(rest[0]), int(rest[1]), int(rest[2])))
    _nan_from(int(rest[0]))
    sys.exit(main(rest[1:]))
