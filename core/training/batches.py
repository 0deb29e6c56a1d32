"""Where the training batches' data rows come from: all rows on the device, or streamed through a DataLoader.

Why: small data (the 2-D toys, tables) is moved to the device once and indexed there, the fastest way. Data
too large for the device (above DEVICE_DATA_BYTES, or a memory-mapped .npy larger than memory) stays on the
host: a DataLoader over it yields batches, pinned and copied ahead on CUDA, and under torchrun a
DistributedSampler gives each rank its own shard of every epoch. Both give a block of k batches at a time,
normalised, on the training device (`Rows.block`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from ..maths.normalizer import Normalizer
from .distributed import Group

__all__ = ["DEVICE_DATA_BYTES", "FIT_ROWS", "DeviceRows", "Rows", "StreamedRows", "fit_rows", "open_npy", "rows_for"]

#: Training data above this many bytes (float32) is streamed from the host rather than moved to the device.
DEVICE_DATA_BYTES = 1 << 30
#: The normaliser of streamed data is fitted on at most this many rows, evenly spaced through the data.
FIT_ROWS = 200_000

DataLike = Tensor | np.ndarray


class Rows(Protocol):
    """A source of training rows: `block(k)` gives k batches [k, batch, d] (normalised, on the device) and,
    with labels, their labels [k, batch]."""

    def block(self, k: int) -> tuple[Tensor, Tensor | None]:
        """The next k batches of rows and their labels (None without labels)."""
        ...


def open_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """A .npy file of shape (n, d) memory-mapped read-only, never unpickled; ValueError naming the file otherwise."""
    file = Path(path)
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{file.name}: cannot memory-map it as a .npy array ({err})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{file.name}: expected a 2-D array of shape (n >= 2, d), got shape {np.shape(array)}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{file.name}: expected a numeric array, got dtype {array.dtype}")
    return array


def fit_rows(data: DataLike) -> Tensor:
    """The rows a normaliser is fitted on: all of a tensor, or up to FIT_ROWS evenly spaced rows of an array
    (a memory map is read only there), checked finite."""
    if isinstance(data, Tensor):
        return data
    step = max(1, len(data) // FIT_ROWS)
    rows = torch.from_numpy(np.array(data[::step], dtype=np.float32))
    if not bool(torch.isfinite(rows).all()):
        raise ValueError("training data holds NaN or inf values")
    return rows


class DeviceRows:
    """All rows on the device (normalised once); batches are rows picked by a seeded generator, with replacement."""

    def __init__(self, data: Tensor, labels: Tensor | None, normalizer: Normalizer, batch: int,
                 generator: torch.Generator, device: torch.device) -> None:
        self.z = normalizer.encode(data.to(device, torch.float32))
        self.labels = None if labels is None else labels.to(generator.device)
        self.batch, self.generator, self.device = batch, generator, device

    def block(self, k: int) -> tuple[Tensor, Tensor | None]:
        """k batches of indices drawn at once (the first draw of a block, as the trainer always made it)."""
        rows, _, labels = self.paired_block(k, None)
        return rows, labels

    def paired_block(self, k: int, partners: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """k batches of rows, of the rows of `partners` [N, D] with the same indices (an index-aligned coupling
        such as reflow's: row i of the data goes with row i of the partners), and of their labels."""
        index = torch.randint(len(self.z), (k, self.batch), generator=self.generator,
                              device=self.generator.device).to(self.device)
        labels = None if self.labels is None else self.labels[index.to(self.generator.device)]
        return self.z[index], None if partners is None else partners[index], labels


class _Table(Dataset[tuple[Tensor, Tensor | None]]):
    """Rows of an array or tensor, fetched a whole batch of indices at a time (sorted: sequential reads of a map)."""

    def __init__(self, data: DataLike, labels: Tensor | None) -> None:
        self.data, self.labels = data, labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: list[int]) -> tuple[Tensor, Tensor | None]:
        order = np.sort(np.asarray(index))
        if isinstance(self.data, Tensor):
            rows = self.data[torch.from_numpy(order)].float()
        else:
            rows = torch.from_numpy(np.asarray(self.data[order], dtype=np.float32))
        return rows, None if self.labels is None else self.labels[torch.from_numpy(order)]


class StreamedRows:
    """Rows streamed by a DataLoader: each epoch a DistributedSampler shuffles the rows (seeded) and gives this
    rank its share; batches of `batch` rows, the last incomplete one of an epoch dropped."""

    def __init__(self, data: DataLike, labels: Tensor | None, normalizer: Normalizer, batch: int, seed: int,
                 group: Group, device: torch.device) -> None:
        if len(data) < batch * group.world_size:
            raise ValueError(f"streamed training needs at least batch_size x ranks = {batch * group.world_size} "
                             f"rows, got {len(data)}")
        table = _Table(data, labels)
        self.sampler: DistributedSampler[int] = DistributedSampler(
            table, num_replicas=group.world_size, rank=group.rank, shuffle=True, seed=seed, drop_last=True)
        # its own generator: a DataLoader otherwise draws its base seed from torch's global one at every epoch
        self.loader = DataLoader(table, sampler=BatchSampler(self.sampler, batch, drop_last=True), batch_size=None,
                                 generator=torch.Generator().manual_seed(seed))
        self.normalizer, self.device, self.epoch = normalizer, device, 0
        self.batches: Iterator[tuple[Tensor, Tensor | None]] = iter(self.loader)

    def _next(self) -> tuple[Tensor, Tensor | None]:
        try:
            return next(self.batches)
        except StopIteration:
            self.epoch += 1
            self.sampler.set_epoch(self.epoch)
            self.batches = iter(self.loader)
            return next(self.batches)

    def block(self, k: int) -> tuple[Tensor, Tensor | None]:
        """The next k batches, copied to the device (asynchronously from pinned memory on CUDA) and normalised."""
        drawn = [self._next() for _ in range(k)]
        rows = torch.stack([x for x, _ in drawn])
        if self.device.type == "cuda":  # pinned, so that the copy runs while the GPU trains on the last block
            rows = rows.pin_memory()
        rows = rows.to(self.device, non_blocking=True)
        labels = None if drawn[0][1] is None else torch.stack([y for _, y in drawn if y is not None])
        return self.normalizer.encode(rows), labels


def rows_for(data: DataLike, labels: Tensor | None, normalizer: Normalizer, batch: int, seed: int,
             stream: bool | None, group: Group, generator: torch.Generator, device: torch.device) -> Rows:
    """DeviceRows, or StreamedRows when asked (`stream` True), for an array (a memory map), or for a tensor
    above DEVICE_DATA_BYTES (`stream` None)."""
    if stream is None:
        stream = not isinstance(data, Tensor) or data.shape[0] * data.shape[1] * 4 > DEVICE_DATA_BYTES
    if not stream:
        tensor = data if isinstance(data, Tensor) else torch.from_numpy(np.asarray(data))
        return DeviceRows(tensor, labels, normalizer, batch, generator, device)
    return StreamedRows(data, labels, normalizer, batch, seed, group, device)
