"""Streamed training data: a memory-mapped .npy through a DataLoader, sharded per rank by a DistributedSampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowscope import MLPConfig, TrainConfig, train
from flowscope.maths.normalizer import Normalizer
from flowscope.training.batches import StreamedRows, open_npy, rows_for
from flowscope.training.distributed import SINGLE, Group


def _index_rows(n: int, tmp_path: Path) -> np.ndarray:
    """A memory-mapped .npy whose row i is (i, -i): a batch says which rows it holds."""
    path = tmp_path / "rows.npy"
    np.save(path, np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32))
    return open_npy(path)


def test_an_epoch_gives_each_rank_its_own_rows_and_all_ranks_every_row(tmp_path: Path) -> None:
    data = _index_rows(1000, tmp_path)
    seen = []
    for rank in (0, 1):
        rows = StreamedRows(data, None, Normalizer.identity(2), 100, seed=0, group=Group(rank, 2, rank, "gloo"),
                            device=torch.device("cpu"))
        block, labels = rows.block(5)  # one epoch: 1000 rows / 2 ranks / batches of 100
        assert block.shape == (5, 100, 2) and labels is None
        assert torch.equal(block[..., 1], -block[..., 0])  # rows stay whole
        seen.append(set(block[..., 0].flatten().long().tolist()))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(1000))
    next_epoch = set(rows.block(5)[0][..., 0].flatten().long().tolist())
    assert len(next_epoch) == 500 and next_epoch != seen[1]  # the next epoch: reshuffled, split afresh


@pytest.mark.slow
def test_streaming_from_a_memory_map_trains_like_rows_on_the_device(tmp_path: Path, moons: np.ndarray) -> None:
    path = tmp_path / "moons.npy"
    np.save(path, moons)
    data = open_npy(path)
    assert isinstance(rows_for(data, None, Normalizer.identity(2), 64, 0, None, SINGLE, torch.Generator(),
                               torch.device("cpu")), StreamedRows)  # an array streams by default
    config = TrainConfig(steps=300, batch_size=128, seed=0, device="cpu")
    streamed = train(data, model=MLPConfig(dim=2, width=64, depth=2), config=config)
    on_device = train(torch.from_numpy(moons), model=MLPConfig(dim=2, width=64, depth=2), config=config)
    first, last = np.mean(streamed.losses[:30]), np.mean(streamed.losses[-30:])
    assert last < 0.8 * first
    assert abs(last - np.mean(on_device.losses[-30:])) < 0.15 * last  # the same problem, another batch order
    assert streamed.model.normalizer == on_device.model.normalizer  # fitted on all 4000 rows (< FIT_ROWS)


def test_open_npy_refuses_what_it_cannot_map_without_unpickling(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy: cannot memory-map"):
        open_npy(objects)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"cube.npy: expected a 2-D array.*\(2, 2, 2\)"):
        open_npy(cube)
