"""Uploaded files -> data or models, with every problem turned into an exception carrying a readable message.

No Streamlit here (tested directly): pages call these and show the message with st.error.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowscope import FlowModel
from flowscope.data.loader import DataError, Limits, Table, load_table_bytes
from flowscope.io.checkpoint import CheckpointError, from_bytes

#: Largest upload, in MB; the same value is server.maxUploadSize in ui/.streamlit/config.toml.
MAX_UPLOAD_MB = 50
#: Caps on uploaded data (the loader refuses more) and on training settings; shown beside the widgets.
MAX_ROWS = 200_000
MAX_COLUMNS = 64
MAX_STEPS = 10_000
MAX_WIDTH = 512
UPLOAD_LIMITS = Limits(max_bytes=MAX_UPLOAD_MB * 2**20, max_rows=MAX_ROWS, max_dims=MAX_COLUMNS)


@dataclass(frozen=True)
class KeptFile:
    """An uploaded file kept by the session (its bytes), so it stays chosen when the user comes back to the page
    (Streamlit forgets a file uploader's file when its page is left)."""

    file_id: str
    name: str
    data: bytes

    def getvalue(self) -> bytes:
        """The file's bytes (as an uploaded file gives them)."""
        return self.data


def samples_csv(samples: np.ndarray, columns: Sequence[str]) -> bytes:
    """Samples [n, D] as CSV bytes with a header of the column names (commas and quotes in a name are quoted)."""
    def cell(name: str) -> str:
        return '"' + name.replace('"', '""') + '"' if any(c in name for c in ',"\n') else name

    rows = [",".join(cell(c) for c in columns)]
    rows += [",".join(f"{v:.7g}" for v in row) for row in np.asarray(samples, dtype=np.float64)]
    return ("\n".join(rows) + "\n").encode()


def samples_npy(samples: np.ndarray) -> bytes:
    """Samples [n, D] as the bytes of a float32 .npy file (readable with np.load, no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(samples, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def read_table(data: bytes, name: str, limits: Limits = UPLOAD_LIMITS) -> Table:
    """Parse an uploaded data file; raises DataError ("<name>: <problem>") for anything unusable.

    The size limit (the server's maxUploadSize) is checked again here, by the loader, before parsing. Text
    columns are left out by the loader (`Table.dropped`); at least 2 numeric columns must remain.
    """
    table = load_table_bytes(data, name, limits=limits)
    if table.values.shape[1] < 2:
        left_out = ", ".join(repr(c.name) for c in table.dropped)
        raise DataError(name, f"found {table.values.shape[1]} numeric column"
                              + (f" (text columns left out: {left_out})" if left_out else "")
                              + "; the explorer needs at least 2 (it trains and draws data of 2 or more dimensions)")
    return table


def select_columns(table: Table, columns: Sequence[str]) -> np.ndarray:
    """The chosen columns as float32 [n, k], in data units (the core normalises them when it trains).

    Raises ValueError naming the problem: fewer than 2 columns, or fewer than 2 that vary (a constant
    column is kept as a constant of the model, but there must be something to learn).
    """
    if len(columns) < 2:
        raise ValueError(f"choose at least 2 columns to train on ({len(columns)} chosen)")
    index = [table.columns.index(c) for c in columns]
    points = table.values[:, index]
    constant = [c for c, spread in zip(columns, np.ptp(points, axis=0), strict=True) if spread == 0]
    if len(columns) - len(constant) < 2:
        raise ValueError(f"column{'s' if len(constant) > 1 else ''} {', '.join(map(repr, constant))} "
                         f"{'are' if len(constant) > 1 else 'is'} constant: at least 2 chosen columns must vary, "
                         "or there is nothing to learn")
    return np.ascontiguousarray(points, dtype=np.float32)


def constant_columns(table: Table, columns: Sequence[str]) -> list[str]:
    """The chosen columns that hold one value (constants of the model)."""
    index = [table.columns.index(c) for c in columns]
    return [c for c, spread in zip(columns, np.ptp(table.values[:, index], axis=0), strict=True) if spread == 0]


def suggest_standardise(table: Table) -> bool:
    """Whether the varying columns' scales differ enough (over 5x) that standardising each column helps."""
    std = table.values.std(axis=0)
    std = std[std > 0]
    return bool(len(std) and std.max() / std.min() > 5.0)


def read_model(data: bytes, name: str, data_dim: int | None = None) -> FlowModel:
    """Validate an uploaded .safetensors model; raises CheckpointError with a readable message.

    The explorer draws models of 2 or more dimensions. A model that carries no data sample is shown against
    the data chosen on the page (`data_dim` columns), which must then match its dimension.
    """
    if len(data) > UPLOAD_LIMITS.max_bytes:
        raise CheckpointError(f"{name}: file is {len(data) / 2**20:.1f} MB, over the upload limit of "
                              f"{MAX_UPLOAD_MB} MB")
    flow = from_bytes(data, name)
    if flow.dim < 2:
        raise CheckpointError(f"{name}: the model is {flow.dim}-dimensional; the explorer's views need at least "
                              "2 dimensions, so train one on two or more columns of the data to explore it here")
    if flow.data is None and data_dim is not None and flow.dim != data_dim:
        raise CheckpointError(f"{name}: the model is {flow.dim}-dimensional but the chosen data have "
                              f"{data_dim} columns; pick data of the model's dimension")
    return flow
