"""The training rows a model keeps in its file (`FlowModel.data`), chosen by one rule for the CLI, the Train page
and the zoo alike.

Why: the explorer shows a model beside the data it learned, and a conditional model's label accuracy is measured
against them; the same model trained by any of the three should carry the same rows. The first rows of a file
sorted by class would hold only its first classes, so the sample is seeded and stratified by class.
"""

from __future__ import annotations

import numpy as np
import torch

from ..flow.model import FlowModel

__all__ = ["DATA_SAMPLE_ROWS", "DATA_SAMPLE_SEED", "keep_data_sample", "sample_rows"]

#: Most training rows kept in a model file: enough for the explorer's scatter and exact fields, small files.
DATA_SAMPLE_ROWS = 2000
#: Seed of the kept rows: fixed (not the training seed), so that the same data give the same sample.
DATA_SAMPLE_SEED = 0


def sample_rows(n: int, labels: np.ndarray | None = None, rows: int = DATA_SAMPLE_ROWS,
                seed: int = DATA_SAMPLE_SEED) -> np.ndarray:
    """Indices (sorted, int64) of `rows` of n rows: all of them when n <= rows, else a seeded random choice; with
    `labels` (a class index per row) each class gets its share of `rows` (largest remainders; at least one row,
    so a class rarer than 1 in `rows` adds one), so that every class is kept in proportion however the rows are
    ordered."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if n <= rows:
        return np.arange(n, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    if labels is None:
        return np.sort(rng.choice(n, size=rows, replace=False)).astype(np.int64)
    classes = np.asarray(labels).reshape(-1)
    if len(classes) != n:
        raise ValueError(f"labels: one per row, got {len(classes)} for {n} rows")
    present, counts = np.unique(classes, return_counts=True)
    share = counts * (rows / n)
    take = np.maximum(np.floor(share).astype(np.int64), 1)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    for k in order[: max(rows - int(take.sum()), 0)]:
        take[k] += 1
    take = np.minimum(take, counts)
    chosen = [rng.choice(np.flatnonzero(classes == c), size=int(m), replace=False) for c, m in zip(present, take,
                                                                                                    strict=True)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def keep_data_sample(flow: FlowModel, points: np.ndarray | torch.Tensor,
                     labels: np.ndarray | torch.Tensor | None = None) -> FlowModel:
    """The model with `sample_rows` of its training points [n, D] (data units) stored in it as `flow.data`, and
    for a conditional model those rows' labels as `flow.data_labels` (None without labels)."""
    classes = None if labels is None else np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    index = sample_rows(len(points), classes)
    taken = points[torch.from_numpy(index)] if isinstance(points, torch.Tensor) else points[index]
    flow.data = torch.as_tensor(np.asarray(taken.cpu() if isinstance(taken, torch.Tensor) else taken),
                                dtype=torch.float32).clone()
    flow.data_labels = None if classes is None else torch.from_numpy(classes[index].astype(np.int64))
    return flow
