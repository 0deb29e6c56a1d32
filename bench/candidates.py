"""Proposed core changes, measured by monkeypatching flowscope inside the benchmark process.

Nothing here is imported by flowscope; `compare.py` applies a candidate with `patched_all(...)`, times it
next to the shipped code, and reports both (the `flowscope+patch` rows), so the lead can see the effect of a
change before making it in core/. Each candidate names the core function it replaces and why.

Already applied in core (commit 6dcbd53, measured here first): POT's network simplex for the exact OT
permutation instead of scipy's linear_sum_assignment (3-4x on 2-D costs), `OTPath.sample` in two fused ops,
randomness drawn in blocks, the lazy (NaN-safe) EMA without per-step snapshots, the fused MSE loss, and
`MLPConfig.time_features` lowered from 8 (dopri5 NFE ~3x higher at the same W2).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------------------
# 1. core/training.py `_fit`: `opt_class(net.parameters(), lr=..., weight_decay=..., fused=True)`.
#    torch's default Adam/AdamW on CPU is the per-parameter Python loop (~6 small ops per tensor);
#    the fused kernel (CPU since torch 2.4, CUDA) does one pass per tensor: 229 -> 69 us per step for
#    the 2-D MLP here, ~20% of a whole training step.


class _FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(..., fused=True)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **{**kwargs, "fused": True})


class _FusedAdamW(torch.optim.AdamW):
    """torch.optim.AdamW(..., fused=True)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **{**kwargs, "fused": True})


# --------------------------------------------------------------------------------------------------------
# 2. core/training.py `_fit`: solve the minibatch-OT couplings of the coming steps on worker threads.
#    The coupling of step k does not depend on the model, POT's network simplex releases the GIL, and with
#    one core busy training the others are idle: OT_WORKERS threads keep up to RANDOM_BLOCK pairings in
#    flight. Same pairs in the same order as the serial loop (the randomness is drawn by the main thread).
#    5. on CUDA, `float(loss)` each step is a device sync that stalls the launch queue: read the losses back
#    every SYNC_EVERY steps instead (the EMA is then snapshotted at each read so a NaN found late can be
#    undone).

#: Threads solving minibatch-OT couplings ahead of the training loop (0 = solve inline).
OT_WORKERS = min(4, os.cpu_count() or 1)
#: Steps between loss read-backs on CUDA (1 on CPU or with a callback, which needs each loss).
SYNC_EVERY = 50
_POOL: ThreadPoolExecutor | None = None


class _Snapshot:
    """A copy of a module's parameters, refreshed and restored with foreach copies."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = [p.detach() for p in module.parameters()]
        self.copy = [p.clone() for p in self.params]

    def save(self) -> None:
        torch._foreach_copy_(self.copy, self.params)

    def restore(self) -> None:
        torch._foreach_copy_(self.params, self.copy)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(OT_WORKERS, 1), thread_name_prefix="ot-coupling")
    return _POOL


def prefetch_fit(flow, data, config, device, callback):  # type: ignore[no-untyped-def]  # noqa: C901
    """Drop-in replacement of `flowscope.training._fit` (as of commit 6dcbd53) with changes 2 and 5."""
    import copy
    import math
    import time
    from dataclasses import replace

    from flowscope.couplings import pair
    from flowscope.training import (
        RANDOM_BLOCK,
        StepInfo,
        TrainingDiverged,
        TrainResult,
        _learning_rate,
        cfm_loss,
    )

    lazy = device.type == "cuda" and callback is None
    sync_every = SYNC_EVERY if lazy else 1
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    z1_all = flow.normalizer.encode(data.to(device, torch.float32))
    z0_all = None if flow.source is None else flow.normalizer.encode(flow.source.to(device, torch.float32))
    net = flow.net.train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    ema_flow = replace(flow, net=ema)
    opt_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_class(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    params: list[Tensor] = list(net.parameters())
    ema_params: list[Tensor] = list(ema.parameters())
    path, batch, dim = flow.path, config.batch_size, z1_all.shape[1]
    result = TrainResult(model=ema_flow)
    prefetch = flow.coupling != "independent" and OT_WORKERS > 0
    last_good = _Snapshot(ema) if lazy else None
    pending: list[Tensor] = []
    futures: list[Future] = []

    def check(step: int) -> None:
        values = torch.stack(pending).tolist() if len(pending) > 1 else [float(pending[0])]
        pending.clear()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                result.losses.extend(values[:i])
                if last_good is not None:
                    last_good.restore()
                for future in futures:
                    future.cancel()
                result.seconds = time.perf_counter() - start
                raise TrainingDiverged(
                    f"training stopped at step {len(result.losses) + 1}: the loss became {value} "
                    f"(learning rate {config.lr:g} too high?); the last good weights are kept",
                    result,
                )
        result.losses.extend(values)
        if last_good is not None:
            last_good.save()

    start = time.perf_counter()
    for step in range(config.steps):
        j = step % RANDOM_BLOCK
        if j == 0:
            k = min(RANDOM_BLOCK, config.steps - step)
            idx1 = torch.randint(len(z1_all), (k, batch), generator=generator).to(device)
            if z0_all is None:
                src = torch.randn(k, batch, dim, generator=generator).to(device)
            else:
                src = z0_all[torch.randint(len(z0_all), (k, batch), generator=generator).to(device)]
            times = (torch.rand(k, batch, generator=generator) * path.t_max).to(device)
            if prefetch:
                futures = [_pool().submit(pair, src[i], z1_all[idx1[i]], flow.coupling) for i in range(k)]
        lr = _learning_rate(config, step)
        if lr != optimizer.param_groups[0]["lr"]:
            for group in optimizer.param_groups:
                group["lr"] = lr
        z0, z1 = futures[j].result() if prefetch else pair(src[j], z1_all[idx1[j]], flow.coupling)
        t = times[j]
        sample = path.sample(z0, z1, t, generator)
        loss = cfm_loss(net, sample.x_t, t, sample.u_t)
        pending.append(loss.detach())
        if len(pending) >= sync_every:
            check(step)
        with torch.no_grad():  # these weights gave a finite loss (or, lazily, will be checked)
            decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if callback is not None:
            info = StepInfo(step + 1, config.steps, result.losses[-1], lr, time.perf_counter() - start)
            if callback(info, ema_flow):
                result.stopped_early = True
                for future in futures:
                    future.cancel()
                break
    if pending:
        check(config.steps)
    result.seconds = time.perf_counter() - start
    ema_flow.info["steps_done"] = int(flow.info.get("steps_done", 0)) + len(result.losses)
    ema_flow.info["train_seconds"] = round(result.seconds, 2)
    return result


# --------------------------------------------------------------------------------------------------------


def _training_module() -> Any:
    import flowscope.training as training

    return training


CANDIDATES: dict[str, tuple[Any, str, Any]] = {
    "fused-adam": (torch.optim, "Adam", _FusedAdam),
    "fused-adamw": (torch.optim, "AdamW", _FusedAdamW),
    "prefetch-fit": (_training_module(), "_fit", prefetch_fit),
}

#: Everything proposed for the training step, applied together.
TRAIN_STEP_PATCH = ["fused-adam", "fused-adamw", "prefetch-fit"]


@contextlib.contextmanager
def patched(name: str) -> Iterator[None]:
    """Apply candidate `name` (module attribute swap) for the duration of the block."""
    module, attribute, replacement = CANDIDATES[name]
    original = getattr(module, attribute)
    setattr(module, attribute, replacement)
    try:
        yield
    finally:
        setattr(module, attribute, original)


@contextlib.contextmanager
def patched_all(names: list[str]) -> Iterator[None]:
    """Apply several candidates at once."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(patched(name))
        yield
