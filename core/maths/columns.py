"""The names of unnamed columns, for every part of the library: loaded arrays and header-less files, built-in
datasets, sample files, and the views' axes.

Why: x0, x1 mean noise and data in flow matching (t = 0 noise, t = 1 data), so a table's columns must not be
named so; x and y read as a plane's coordinates, and c1..cD count columns from 1, as people do.
"""

from __future__ import annotations

__all__ = ["generated_columns"]


def generated_columns(d: int) -> tuple[str, ...]:
    """The names of d unnamed columns: x, y for two (one: x), c1 to cD above; never x0, x1."""
    return ("x", "y")[:d] if d <= 2 else tuple(f"c{j + 1}" for j in range(d))
