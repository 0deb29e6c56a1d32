"""Which columns of a loaded table a model learns, and which column labels it: one rule for the CLI (--columns,
--labels) and the explorer's Train page.

Why: a feature spec names header names or 0-based indices among the numeric columns; a label spec names a
header name or an index among ALL the file's columns (text ones included, as a label column is often text);
a numeric label column is never a feature. Written once, a table gives the same model from either place, and
every refusal is a `DataError` naming the file, what was asked and what there is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .labels import Labels, encode_labels
from .loader import DataError, Table

__all__ = ["LabelColumn", "Selection", "columns_for_model", "feature_columns", "label_column", "pick_columns",
           "select", "take_columns"]


@dataclass(frozen=True, eq=False)
class LabelColumn:
    """The column that labels a conditional model: its name, its cells (one per row), and its position among the
    table's numeric columns (None for a text column)."""

    name: str
    cells: Sequence[object] | np.ndarray
    numeric: int | None


@dataclass(frozen=True, eq=False)
class Selection:
    """A table's chosen features and labels: positions among `table.columns`, their names, the points (float32
    [n, k], data units), and with a label column that column and its encoded classes."""

    index: list[int]
    columns: tuple[str, ...]
    points: np.ndarray
    label: LabelColumn | None = None
    labels: Labels | None = None


def _tokens(spec: str | Sequence[str]) -> list[str]:
    """A columns spec as its tokens: a comma list (the CLI's) or a sequence of names / indices (the page's)."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return [str(part).strip() for part in parts]


def pick_columns(table: Table, spec: str | Sequence[str] | None, file: str, *, option: str = "--columns") -> list[int]:
    """The positions among `table.columns` that a columns spec names (header names, or 0-based indices among the
    numeric columns; all of them when None); DataError for a name that is not a numeric column (a text column
    says why it was left out) or a column named twice."""
    columns = table.columns
    if spec is None:
        return list(range(len(columns)))
    available = (f"the numeric columns are {', '.join(map(repr, columns))} "
                 f"(or their indices 0-{len(columns) - 1})")
    chosen: list[int] = []
    for token in _tokens(spec):
        if token in columns:
            k = columns.index(token)
        elif token.isascii() and token.isdigit() and int(token) < len(columns):
            k = int(token)
        else:
            text = next((column for column in table.dropped if column.name == token), None)
            if text is not None:
                raise DataError(file, f"column {token!r} was left out as text ({text.reason}); {available}")
            raise DataError(file, f"{option} names {token!r}, which is not a column; {available}")
        if k in chosen:
            raise DataError(file, f"{option} names column {columns[k]!r} twice")
        chosen.append(k)
    return chosen


def label_column(table: Table, spec: str, file: str, *, option: str = "--labels") -> LabelColumn:
    """The column a label spec names: a header name, or a 0-based index among all the file's columns, text ones
    included; DataError naming the file and the columns there are otherwise."""
    token = spec.strip()
    dropped = {column.index: column for column in table.dropped}
    total = len(table.columns) + len(dropped)
    numeric = [j for j in range(total) if j not in dropped]  # file positions of table.columns, in order
    if token in table.columns:
        k = table.columns.index(token)
        return LabelColumn(token, table.values[:, k], k)
    if token.isascii() and token.isdigit() and int(token) < total:
        position = int(token)
        if position not in dropped:
            k = numeric.index(position)
            return LabelColumn(table.columns[k], table.values[:, k], k)
        token = dropped[position].name
    if token in table.text:
        return LabelColumn(token, table.text[token], None)
    names = [dropped[j].name if j in dropped else table.columns[numeric.index(j)] for j in range(total)]
    raise DataError(file, f"{option} names {spec!r}, which is not a column; the columns are "
                          f"{', '.join(map(repr, names))} (or their indices 0-{total - 1}, text columns counted)")


def feature_columns(table: Table, spec: str | Sequence[str] | None, file: str, label: LabelColumn | None = None, *,
                    min_columns: int = 1, option: str = "--columns") -> list[int]:
    """The numeric columns a model learns: those the spec names (never a numeric `label` column), else all but the
    label column; DataError when fewer than `min_columns` are left."""
    if spec is not None:
        index = pick_columns(table, spec, file, option=option)
        if label is not None and label.numeric in index:
            raise DataError(file, f"{option} names the label column {label.name!r}; labels are not features")
    else:
        index = [k for k in range(len(table.columns)) if label is None or k != label.numeric]
        if label is not None and not index:
            raise DataError(file, f"label column {label.name!r}: the label column is the only column: nothing left "
                                  "to model")
    if len(index) >= min_columns:
        return index
    if label is None:
        raise DataError(file, f"choose at least {min_columns} columns to train on ({len(index)} chosen)"
                        if spec is not None else f"the file has only {len(index)} numeric column(s): a model needs "
                                                 f"at least {min_columns}")
    if spec is None:
        raise DataError(file, f"{label.name!r} is the label column, and the file has only {len(index)} other "
                              f"numeric column{'' if len(index) == 1 else 's'}: a model needs at least {min_columns} "
                              "columns to learn besides its labels")
    raise DataError(file, f"{label.name!r} is the label column, so it is not one of the columns the model learns: "
                          f"choose at least {min_columns} other columns to train on ({len(index)} chosen)")


def take_columns(points: np.ndarray, index: list[int]) -> np.ndarray:
    """The columns `index` of points (the array itself when that is all of them, in order)."""
    return points if index == list(range(points.shape[1])) else np.ascontiguousarray(points[:, index])


def select(table: Table, file: str, columns: str | Sequence[str] | None = None, labels: str | None = None, *,
           min_columns: int = 1, options: tuple[str, str] = ("--columns", "--labels")) -> Selection:
    """A table's features (`feature_columns`) and, with a label spec, its label column and classes
    (`labels.encode_labels`, which refuses unusable label columns); `options` name the choices in messages."""
    label = None if labels is None else label_column(table, labels, file, option=options[1])
    index = feature_columns(table, columns, file, label, min_columns=min_columns, option=options[0])
    encoded = None if label is None else encode_labels(label.cells, file=file, column=label.name)
    return Selection(index, tuple(table.columns[k] for k in index), take_columns(table.values, index), label, encoded)


def columns_for_model(table: Table, file: str, spec: str | Sequence[str] | None, names: object,
                      label: LabelColumn | None = None) -> np.ndarray:
    """A file's points for a model of columns `names`: those the spec picks if given, else the columns named
    `names` when the file's header has them all, else all its numeric columns (the caller checks the count);
    never a numeric `label` column."""
    if spec is not None:
        return take_columns(table.values, feature_columns(table, spec, file, label))
    if (isinstance(names, list) and names and table.header
            and all(isinstance(name, str) and name in table.columns for name in names)):
        return take_columns(table.values, [table.columns.index(name) for name in names])
    if label is not None and label.numeric is not None:
        return take_columns(table.values, [k for k in range(len(table.columns)) if k != label.numeric])
    return table.values
