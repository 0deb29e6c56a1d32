"""Loss read-back every K steps (the GPU loop's no-sync mode), checked on CPU where it must change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import flowscope.training.loop
from flowscope import FlowModel, MLPConfig, StepInfo, TrainConfig, TrainingDiverged, train
from flowscope.training.readback import CUDA_CHECK_EVERY, check_every

TINY = MLPConfig(dim=2, width=32, depth=2)


def _weights(flow: FlowModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in flow.net.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture()
def nan_at_step_21(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The 21st training step's loss is NaN."""
    real, calls = flowscope.training.loop.cfm_loss, [0]

    def poisoned(*args: object, **kwargs: object) -> torch.Tensor:
        calls[0] += 1
        loss = real(*args, **kwargs)  # type: ignore[arg-type]
        return loss * float("nan") if calls[0] == 21 else loss

    monkeypatch.setattr(flowscope.training.loop, "cfm_loss", poisoned)
    yield


def test_default_interval_is_one_on_cpu_and_longer_on_cuda() -> None:
    assert check_every(None, torch.device("cpu")) == 1
    assert check_every(None, torch.device("cuda")) == CUDA_CHECK_EVERY > 1
    assert check_every(5, torch.device("cpu")) == 5
    with pytest.raises(ValueError, match="check_every"):
        TrainConfig(check_every=0)


def test_reading_every_k_steps_gives_the_same_model_and_losses(moons: np.ndarray) -> None:
    data = torch.from_numpy(moons)
    seen: list[int] = []
    every_step = train(data, model=TINY, config=TrainConfig(steps=50, batch_size=64, device="cpu"))
    blocks = train(data, model=TINY, config=TrainConfig(steps=50, batch_size=64, device="cpu", check_every=8),
                   callback=lambda info, flow: seen.append(info.step))
    assert _same(_weights(every_step.model), _weights(blocks.model))
    assert blocks.losses == every_step.losses and len(blocks.losses) == 50
    assert seen == list(range(1, 51))  # every step shown to the callback, in order, the last block short


def test_a_nan_inside_a_block_keeps_the_last_checked_block(moons: np.ndarray, nan_at_step_21: None) -> None:
    data = torch.from_numpy(moons)
    config = TrainConfig(steps=50, batch_size=64, device="cpu")
    with pytest.raises(TrainingDiverged, match=r"step 21: the loss became nan.*weights of step 16") as caught:
        train(data, model=TINY, config=TrainConfig(steps=50, batch_size=64, device="cpu", check_every=8))
    kept = caught.value.result.model
    assert len(caught.value.result.losses) == 16

    def stop_at_16(info: StepInfo, flow: FlowModel) -> bool:
        return info.step == 16

    clean = train(  # the poisoned call (the 21st of the test) is behind us: a clean run
        data, model=TINY, config=config, callback=stop_at_16)
    assert clean.stopped_early and len(clean.losses) == 16
    assert _same(_weights(kept), _weights(clean.model))  # the EMA rolled back to exactly step 16's
