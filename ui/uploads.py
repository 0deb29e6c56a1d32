"""Uploaded files -> data or models, with every problem turned into an exception carrying a readable message.

No Streamlit here (tested directly): pages call these and show the message with st.error.
"""

from __future__ import annotations

import numpy as np

from flowscope import FlowModel
from flowscope.checkpoint import CheckpointError, from_bytes
from flowscope.loader import DataError, Limits, Table, load_table_bytes

#: Largest upload, in MB; the same value is server.maxUploadSize in ui/.streamlit/config.toml.
MAX_UPLOAD_MB = 50
#: Caps on uploaded data (the loader refuses more) and on training settings; shown beside the widgets.
MAX_ROWS = 200_000
MAX_COLUMNS = 64
MAX_STEPS = 10_000
MAX_WIDTH = 512
UPLOAD_LIMITS = Limits(max_bytes=MAX_UPLOAD_MB * 2**20, max_rows=MAX_ROWS, max_dims=MAX_COLUMNS)


def read_table(data: bytes, name: str, limits: Limits = UPLOAD_LIMITS) -> Table:
    """Parse an uploaded data file; raises DataError ("<name>: <problem>") for anything unusable.

    The size limit (the server's maxUploadSize) is checked again here, by the loader, before parsing.
    """
    table = load_table_bytes(data, name, limits=limits)
    if table.values.shape[1] < 2:
        raise DataError(name, f"found {table.values.shape[1]} column; the explorer needs at least 2 "
                              "(it trains and draws 2-D data)")
    return table


def select_columns(table: Table, columns: tuple[str, str], standardise: bool) -> np.ndarray:
    """The two chosen columns as float32 [n, 2], each standardised to mean 0 and std 1 if asked."""
    index = [table.columns.index(c) for c in columns]
    if index[0] == index[1]:
        raise ValueError("choose two different columns")
    points = table.values[:, index].astype(np.float64)
    if standardise:
        std = points.std(axis=0)
        points = (points - points.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if np.ptp(points, axis=0).min() == 0:
        raise ValueError(f"column {columns[int(np.argmin(np.ptp(points, axis=0)))]!r} is constant: "
                         "there is nothing to learn along it")
    return points.astype(np.float32)


def suggest_standardise(table: Table) -> bool:
    """Whether the columns' scales differ enough (over 5x) that standardising them helps."""
    std = table.values.std(axis=0)
    return bool(std.min() > 0 and std.max() / std.min() > 5.0)


def read_model(data: bytes, name: str, data_dim: int | None = None) -> FlowModel:
    """Validate an uploaded .safetensors model; raises CheckpointError with a readable message.

    The explorer draws 2-D models; when data are chosen (`data_dim`) the model must match their dimension.
    """
    if len(data) > UPLOAD_LIMITS.max_bytes:
        raise CheckpointError(f"{name}: file is {len(data) / 2**20:.1f} MB, over the upload limit of "
                              f"{MAX_UPLOAD_MB} MB")
    flow = from_bytes(data, name)
    if data_dim is not None and flow.dim != data_dim:
        raise CheckpointError(f"{name}: the model is {flow.dim}-dimensional but the chosen data have "
                              f"{data_dim} columns; pick data of the model's dimension")
    if flow.dim != 2:
        raise CheckpointError(f"{name}: the model is {flow.dim}-dimensional; the explorer's views are 2-D")
    return flow
