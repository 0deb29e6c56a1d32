"""Training: learns, is bit-for-bit reproducible, stops cleanly, keeps last good weights on NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowscope import FlowModel, MLPConfig, SolverConfig, TrainConfig, TrainingDiverged, train
from flowscope.data.datasets import make_dataset
from flowscope.evaluation.metrics import w2
from flowscope.training.loop import StepInfo

TINY = MLPConfig(dim=2, width=32, depth=2)


def _train(data: np.ndarray, **kwargs: object) -> FlowModel:
    config = TrainConfig(steps=60, batch_size=64, seed=3, device="cpu")
    return train(torch.from_numpy(data), model=TINY, config=config, **kwargs).model  # type: ignore[arg-type]


def test_same_seed_same_weights_and_samples(moons: np.ndarray) -> None:
    a, b = _train(moons), _train(moons)
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    sa = a.sample(50, solver=SolverConfig("euler", steps=10), generator=gen()).samples
    sb = b.sample(50, solver=SolverConfig("euler", steps=10), generator=gen()).samples
    assert torch.equal(sa, sb)


def test_training_learns_the_data(small_flow: FlowModel, moons: np.ndarray) -> None:
    """After a few hundred steps the samples are far closer to the data than the prior is."""
    gen = torch.Generator().manual_seed(1)
    samples = small_flow.sample(1000, solver=SolverConfig("rk4", steps=20), generator=gen).samples.numpy()
    prior = small_flow.draw_source(1000, torch.Generator().manual_seed(2)).numpy()
    reference = make_dataset("moons", 1000, seed=9)
    assert w2(samples, reference) < 0.5 * w2(prior, reference)


@pytest.mark.parametrize("path", ["ot", "vp", "ve", "cosine", "icfm"])
def test_every_path_trains_and_records_itself(moons: np.ndarray, path: str) -> None:
    flow = _train(moons, path=path)
    assert flow.path.name == ("ot" if path == "icfm" else path)
    assert flow.info["steps_done"] == 60
    if path == "ve":
        assert flow.path.prior_std > 3.0  # smax from the normalised data's largest pairwise distance


def test_callback_sees_progress_and_can_stop(moons: np.ndarray) -> None:
    seen: list[StepInfo] = []

    def stop_at_ten(info: StepInfo, flow: FlowModel) -> bool:
        seen.append(info)
        return info.step == 10

    result = train(torch.from_numpy(moons), model=TINY, config=TrainConfig(steps=100, seed=0, device="cpu"),
                   callback=stop_at_ten)
    assert result.stopped_early and len(result.losses) == 10 and [s.step for s in seen] == list(range(1, 11))
    assert all(np.isfinite(s.loss) for s in seen)
    assert result.model.info["steps_done"] == 10


def test_absurd_learning_rate_stops_with_last_good_weights(moons: np.ndarray) -> None:
    config = TrainConfig(steps=200, lr=1e12, grad_clip=0.0, warmup_steps=0, seed=0, device="cpu")
    with pytest.raises(TrainingDiverged, match="loss became") as caught:
        train(torch.from_numpy(moons * 1e3), model=TINY, config=config)
    kept = caught.value.result.model
    for tensor in kept.net.state_dict().values():
        assert torch.isfinite(tensor).all()
    out = kept.velocity(torch.zeros(4, 2), torch.zeros(4))
    assert torch.isfinite(out).all()


def test_non_gaussian_source_and_ot_coupling(moons: np.ndarray) -> None:
    source = make_dataset("8gaussians", 4000, seed=1)
    flow = _train(moons, path="icfm", coupling="ot", source=torch.from_numpy(source))
    assert flow.source is not None and flow.coupling == "ot"
    start = flow.draw_source(100, torch.Generator().manual_seed(0))
    # starting points are drawn from the stored source samples, not from a Gaussian
    assert all(any(torch.equal(s, r) for r in flow.source) for s in start[:5])


def test_resume_continues_from_weights(small_flow: FlowModel, moons: np.ndarray) -> None:
    resumed = train(torch.from_numpy(moons), config=TrainConfig(steps=5, seed=1, device="cpu"), resume=small_flow)
    assert resumed.model.info["steps_done"] == small_flow.info["steps_done"] + 5
    assert resumed.model.net is not small_flow.net  # the resumed-from model is not mutated
    with pytest.raises(ValueError, match="cannot resume a 2-d model on 3-d data"):
        train(torch.zeros(10, 3), config=TrainConfig(steps=1, device="cpu"), resume=small_flow)


def test_learning_rate_schedule() -> None:
    config = TrainConfig(steps=1000, lr=1e-3, warmup_steps=100)
    assert config.learning_rate(0) == pytest.approx(1e-5)
    assert config.learning_rate(99) == pytest.approx(1e-3)
    assert config.learning_rate(999) == pytest.approx(1e-5, rel=0.01)


def test_bad_configs_are_named() -> None:
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="unknown coupling"):
        train(torch.zeros(10, 2), coupling="nope")


def test_ot_coupled_training_is_reproducible(moons: np.ndarray) -> None:
    """Couplings solved ahead on worker threads still give the same pairs in the same order."""
    source = torch.from_numpy(make_dataset("8gaussians", 4000, seed=1))
    a = _train(moons, path="icfm", coupling="ot", source=source)
    b = _train(moons, path="icfm", coupling="ot", source=source)
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


def test_ot_block_is_recorded_and_changes_the_pairs(moons: np.ndarray) -> None:
    """Blocks of 64 (the default) are stored with the model; whole-batch OT (0) is stored by omission, as in
    every checkpoint from before the option existed; the two pair differently, so the weights differ."""
    assert TrainConfig().ot_block == 64 and TrainConfig().to_dict()["ot_block"] == 64
    assert "ot_block" not in TrainConfig(ot_block=0).to_dict()
    with pytest.raises(ValueError, match="ot_block must be >= 0"):
        TrainConfig(ot_block=-1)
    data = torch.from_numpy(moons)
    flows = {block: train(data, coupling="ot", config=TrainConfig(steps=3, batch_size=256, ot_block=block,
                                                                 device="cpu")).model for block in (64, 0)}
    assert flows[64].info["train"]["ot_block"] == 64 and "ot_block" not in flows[0].info["train"]
    assert not torch.equal(flows[64].net.net[0].weight, flows[0].net.net[0].weight)
