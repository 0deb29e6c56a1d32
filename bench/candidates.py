"""The one proposed core change still neither in core nor measured, monkeypatched inside the benchmark process.

Nothing here is imported by flowscope; `compare.py --device cuda` applies the candidate with
`patched_all(TRAIN_STEP_PATCH)`, times it next to the shipped code and reports both (the `flowscope+patch`
rows), so the lead can see its effect before making the change in core/training.py.

Lazy loss read-back (core/training.py `_fit`): core reads each step's loss back (`float(loss)`) to check it
is finite before the EMA absorbs the step's weights. On CUDA that is a device sync per step, which empties
the launch queue of a loop made of small kernels. Without a callback (which needs each loss), the candidate
stacks the pending losses and reads them back every SYNC_EVERY steps, copying the EMA at each read so that a
non-finite loss found late restores the EMA of the last read: the same losses list, the same error on
divergence. On a CPU, or with a callback, it is core's loop itself, so only a GPU run measures anything.
The loop below is core's `_fit` with that change; delete this file once a GPU run has measured it.

Measured here first and now in core: POT's network simplex for exact OT, `OTPath.sample` in two fused ops,
randomness drawn in blocks, the lazy EMA, the fused loss (6dcbd53); fused Adam(W) (0168d44); minibatch-OT
couplings solved ahead on worker threads (82a08b1, f169730).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import torch
from measure import Stopwatch
from torch import Tensor

import flowscope.training as training
from flowscope.couplings import pair
from flowscope.flow import FlowModel

#: Steps between loss read-backs on CUDA.
SYNC_EVERY = 50
_CORE_FIT = training._fit


def _learning_rate(config: training.TrainConfig, step: int) -> float:
    """The schedule as core has it (TrainConfig.learning_rate, formerly training._learning_rate)."""
    if hasattr(config, "learning_rate"):
        return config.learning_rate(step)
    return training._learning_rate(config, step)


def lazy_readback_fit(
    flow: FlowModel,
    data: Tensor,
    config: training.TrainConfig,
    device: torch.device,
    callback: training.Callback | None,
) -> training.TrainResult:
    """Drop-in replacement of `flowscope.training._fit` reading losses back every SYNC_EVERY steps on CUDA."""
    if device.type != "cuda" or callback is not None:
        return _CORE_FIT(flow, data, config, device, callback)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    z1_all = flow.normalizer.encode(data.to(device, torch.float32))
    z0_all = None if flow.source is None else flow.normalizer.encode(flow.source.to(device, torch.float32))
    net = flow.net.train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    ema_flow = replace(flow, net=ema)
    optimizer = training._optimizer(net, config)
    params: list[Tensor] = list(net.parameters())
    ema_params: list[Tensor] = list(ema.parameters())
    last_read = [p.clone() for p in ema_params]
    path, batch, dim = flow.path, config.batch_size, z1_all.shape[1]
    result = training.TrainResult(model=ema_flow)
    pending: list[Tensor] = []
    watch = Stopwatch(device)

    def read_back() -> None:
        values = torch.stack(pending).tolist()
        pending.clear()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                result.losses.extend(values[:i])
                torch._foreach_copy_(ema_params, last_read)
                result.seconds = watch.elapsed()
                raise training.TrainingDiverged(
                    f"training stopped at step {len(result.losses) + 1}: the loss became {value} "
                    f"(learning rate {config.lr:g} too high?); the last good weights are kept",
                    result,
                )
        result.losses.extend(values)
        torch._foreach_copy_(last_read, ema_params)

    solver = ThreadPoolExecutor(min(4, os.cpu_count() or 1)) if flow.coupling != "independent" else None
    try:
        for step in range(config.steps):
            j = step % training.RANDOM_BLOCK
            if j == 0:
                k = min(training.RANDOM_BLOCK, config.steps - step)
                idx1 = torch.randint(len(z1_all), (k, batch), generator=generator).to(device)
                if z0_all is None:
                    src = torch.randn(k, batch, dim, generator=generator).to(device)
                else:
                    src = z0_all[torch.randint(len(z0_all), (k, batch), generator=generator).to(device)]
                times = (torch.rand(k, batch, generator=generator) * path.t_max).to(device)
                if solver is not None:
                    pairs = [solver.submit(pair, src[i], z1_all[idx1[i]], flow.coupling) for i in range(k)]
            lr = _learning_rate(config, step)
            if lr != optimizer.param_groups[0]["lr"]:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            z0, z1 = pairs[j].result() if solver is not None else (src[j], z1_all[idx1[j]])
            t = times[j]
            sample = path.sample(z0, z1, t, generator)
            loss = training.cfm_loss(net, sample.x_t, t, sample.u_t)
            pending.append(loss.detach())
            if len(pending) == SYNC_EVERY:
                read_back()
            with torch.no_grad():  # checked at the next read-back, undone there if not finite
                decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
                torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
        if pending:
            read_back()
    finally:
        if solver is not None:
            solver.shutdown(wait=False, cancel_futures=True)
    result.seconds = watch.elapsed()
    ema_flow.info["steps_done"] = int(flow.info.get("steps_done", 0)) + len(result.losses)
    ema_flow.info["train_seconds"] = round(result.seconds, 2)
    return result


CANDIDATES: dict[str, tuple[Any, str, Any]] = {"lazy-loss-readback": (training, "_fit", lazy_readback_fit)}

#: Everything proposed for the training step, applied together.
TRAIN_STEP_PATCH = list(CANDIDATES)


@contextlib.contextmanager
def patched_all(names: list[str]) -> Iterator[None]:
    """Apply candidates (module attribute swaps) for the duration of the block."""
    swaps = [CANDIDATES[name] for name in names]
    originals = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in swaps]
    try:
        for module, attribute, replacement in swaps:
            setattr(module, attribute, replacement)
        yield
    finally:
        for module, attribute, original in reversed(originals):
            setattr(module, attribute, original)
