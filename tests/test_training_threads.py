"""Trainings that do not disturb each other: every draw comes from the training's own seeded generators, and
no training sets torch's process-wide state (global seed, thread count), as the explorer's job threads need."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import nn

from flowscope import MLPConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset
from flowscope.nets.init import fresh
from flowscope.nets.models import build_net
from flowscope.nets.unet import UNetConfig
from flowscope.training.reflow import student_of

State = dict[str, torch.Tensor]


def _moons_training(seed: int, steps: int = 150) -> State:
    """A small moons training's EMA weights."""
    data = torch.from_numpy(make_dataset("moons", 1000, seed=0))
    config = TrainConfig(steps=steps, batch_size=64, seed=seed, device="cpu")
    return train(data, model=MLPConfig(dim=2, width=32, depth=2), config=config).model.net.state_dict()


def _same(a: State, b: State) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _at_once(*jobs: Callable[[], State]) -> list[State]:
    """Run the jobs in threads started together; their results in order (a job's error is raised here)."""
    results: list[State | BaseException | None] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as err:  # noqa: BLE001 (raised again in the main thread)
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, dict)]


@contextmanager
def _global_state_kept() -> Iterator[None]:
    """Assert that torch's global seed, random state and thread count are as they were."""
    seed, state, threads = torch.initial_seed(), torch.get_rng_state(), torch.get_num_threads()
    yield
    assert torch.initial_seed() == seed
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


@pytest.mark.slow
def test_trainings_at_once_give_the_weights_each_gives_alone() -> None:
    """Two trainings of one seed and one of another at once, while another thread of the process reseeds and
    draws from torch's global generator all along (as any other code of a server may), give the same weights
    as one training alone."""
    alone = _moons_training(seed=3)
    done = threading.Event()

    def disturb() -> None:
        while not done.is_set():
            torch.manual_seed(99)
            torch.rand(100)

    disturber = threading.Thread(target=disturb)
    disturber.start()
    try:
        first, second, other = _at_once(lambda: _moons_training(seed=3), lambda: _moons_training(seed=3),
                                        lambda: _moons_training(seed=4))
    finally:
        done.set()
        disturber.join()
    assert _same(first, alone) and _same(second, alone)
    assert not _same(other, alone)  # the seed does matter: the weights above are not equal by accident


def test_trainings_at_once_leave_torchs_global_state() -> None:
    with _global_state_kept():
        _at_once(lambda: _moons_training(seed=3, steps=20), lambda: _moons_training(seed=4, steps=20))


def test_a_training_sets_no_global_state_and_its_seed_alone_decides_its_weights() -> None:
    with _global_state_kept():
        once = _moons_training(seed=1, steps=30)
    torch.rand(1000)  # move the global generator: a training must not draw from it
    assert _same(_moons_training(seed=1, steps=30), once)


def test_a_streamed_training_sets_no_global_state() -> None:
    data = make_dataset("moons", 1000, seed=0)  # numpy: streamed through a DataLoader
    config = TrainConfig(steps=20, batch_size=64, seed=0, device="cpu", stream=True)
    with _global_state_kept():
        train(data, model=MLPConfig(dim=2, width=16, depth=1), config=config)


@pytest.mark.slow
def test_a_unet_with_dropout_draws_its_masks_from_the_training() -> None:
    images = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(steps=6, batch_size=8, seed=0, device="cpu")

    def fit(dropout: float) -> State:
        model = UNetConfig(1, 4, 4, base=4, multipliers=(1,), attention=False, dropout=dropout)
        return train(images, model=model, config=config).model.net.state_dict()

    with _global_state_kept():
        once = fit(0.5)
    torch.rand(1000)
    assert _same(fit(0.5), once)
    assert not _same(fit(0.0), once)  # the dropout is at work


@pytest.mark.parametrize("layer", [lambda: nn.Linear(5, 7), lambda: nn.Conv2d(3, 4, 3), lambda: nn.Embedding(6, 3),
                                   lambda: nn.GroupNorm(2, 4)], ids=["linear", "conv", "embedding", "groupnorm"])
def test_initial_weights_follow_pytorchs_default_initialisation(layer: Callable[[], nn.Module]) -> None:
    """The same draws, in the same order, as the layer's own initialisation from a generator seeded alike."""
    with torch.random.fork_rng(devices=[]):  # the test's own global draws, then put back
        torch.manual_seed(11)
        usual = layer().state_dict()
    assert _same(fresh(layer, torch.Generator().manual_seed(11)).state_dict(), usual)


def test_networks_built_from_a_generator_are_reproducible_and_leave_global_state() -> None:
    for config in (MLPConfig(dim=3, num_classes=2), UNetConfig(1, 6, 6, base=8, num_classes=2)):
        with _global_state_kept():
            net = build_net(config, torch.Generator().manual_seed(5))
        again = build_net(config, torch.Generator().manual_seed(5)).state_dict()
        assert _same(net.state_dict(), again)
        assert not _same(build_net(config, torch.Generator().manual_seed(6)).state_dict(), again)
    unet = build_net(UNetConfig(1, 6, 6, base=8), torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert float(unet(torch.randn(2, 36), torch.rand(2)).abs().max()) == 0.0  # a fresh U-Net: the zero field
    mlp = build_net(MLPConfig(dim=2, num_classes=2), torch.Generator().manual_seed(5))
    assert mlp.label_embedding is not None
    assert 0.05 < float(mlp.label_embedding.weight.detach().std()) < 0.2  # its own N(0, 0.1^2), not the default N(0, 1)
    assert np.allclose(mlp.time_embedding.freqs.numpy(), [np.pi, 2 * np.pi])  # fixed buffers are filled in


def test_a_fresh_reflow_student_is_drawn_from_its_seed() -> None:
    data = torch.from_numpy(make_dataset("moons", 500, seed=0))
    teacher = train(data, model=MLPConfig(dim=2, width=16, depth=1),
                    config=TrainConfig(steps=5, batch_size=32, device="cpu")).model
    model = MLPConfig(dim=2, width=8, depth=1)
    with _global_state_kept():
        student = student_of(teacher, model, seed=2).net.state_dict()
    torch.rand(1000)
    assert _same(student_of(teacher, model, seed=2).net.state_dict(), student)
