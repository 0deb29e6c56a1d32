"""Shared fixtures: a tiny trained model, trained once per test session on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowscope import FlowModel, MLPConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def moons() -> np.ndarray:
    """4000 moons points (seed 0)."""
    return make_dataset("moons", 4000, seed=0)


@pytest.fixture(scope="session")
def small_flow(moons: np.ndarray) -> FlowModel:
    """A small OT-path model trained for 1500 steps: fast, and good enough to have shape."""
    result = train(torch.from_numpy(moons), path="ot", model=MLPConfig(dim=2, width=64, depth=2),
                   config=TrainConfig(steps=1500, batch_size=256, seed=0, device="cpu"), dataset="moons")
    return result.model
