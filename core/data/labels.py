"""Class labels from a column of a user's table: validated once, for the CLI and the explorer alike.

Why: a conditional model needs each class to have points, a bounded number of classes and no missing
cells; a label column that breaks these gets a message naming the file, the column and what was expected,
instead of a model that silently ignores a class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..nets.models import MAX_CLASSES

__all__ = ["MIN_CLASS_POINTS", "LabelError", "Labels", "encode_labels"]

#: Fewest points a class may have (one point is no distribution to learn).
MIN_CLASS_POINTS = 2


class LabelError(ValueError):
    """A label column that cannot label a conditional model; `str()` names the file, the column and why."""


@dataclass(frozen=True, eq=False)
class Labels:
    """Class indices [n] (int64) into `names`, the classes in order of first appearance."""

    indices: np.ndarray
    names: tuple[str, ...]


def _label_text(value: object) -> str:
    """A cell as a class name: integers without '.0' (a numeric label column), text stripped."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def encode_labels(cells: Sequence[object] | np.ndarray, *, file: str, column: str,
                  lines: Sequence[int] | None = None) -> Labels:
    """Class indices and names of a label column (text or numbers), or a LabelError that names the problem.

    Args:
        cells: one label per data row (strings from a text column, or numbers).
        file, column: named in messages.
        lines: the file's line of each row, for messages (default: 1-based row numbers).
    """
    texts = [_label_text(c) for c in cells]
    where = f"{file}: label column {column!r}"
    empty = [i for i, text in enumerate(texts) if not text or text.lower() == "nan"]
    if empty:
        place = (lambda i: f"line {lines[i]}") if lines is not None else (lambda i: f"row {i + 1}")
        shown = ", ".join(place(i) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise LabelError(f"{where}: {len(empty)} empty label cell(s) ({shown}); every row needs a label")
    counts = Counter(texts)
    if len(counts) < 2:
        raise LabelError(f"{where}: only one class ({next(iter(counts))!r}); a conditional model needs at least 2")
    if len(counts) > MAX_CLASSES:
        raise LabelError(f"{where}: {len(counts):,} classes, over the limit of {MAX_CLASSES} (is it a label, "
                         "or a numeric column?)")
    small = [name for name, count in counts.items() if count < MIN_CLASS_POINTS]
    if small:
        shown = ", ".join(repr(s) for s in small[:5]) + (", ..." if len(small) > 5 else "")
        raise LabelError(f"{where}: class(es) {shown} have fewer than {MIN_CLASS_POINTS} points; "
                         "drop them or merge them into another class")
    names = tuple(dict.fromkeys(texts))
    index = {name: k for k, name in enumerate(names)}
    return Labels(indices=np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts)), names=names)
