"""The corpus of data files that `flowscope.loader` must refuse (and a few it must accept), shared by tests.

The loader's tests, and the CLI and UI tests, run the same cases: call `materialize_corpus(folder)` to get
every bad case as a file (the small ones kept in tests/corpus/ are copied; the others are written there),
then load each with `limits=CORPUS_LIMITS` (or the `limits` you passed) and check that the `DataError`'s
message contains the file's name and `case.expected`. tests/corpus/README.md has the same table for people.

Two generated cases have no readable content: `missing.csv` does not exist and `folder.csv` is a
directory; tests of an in-memory path (uploads) should skip cases whose path is not a file.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from flowscope.data.loader import Limits

CORPUS_DIR = Path(__file__).parent / "corpus"

#: Limits under which every case below fails as described. They are small so that the over-size and
#: too-many-rows files stay small; the static files are well under them.
CORPUS_LIMITS = Limits(max_bytes=64 * 1024, max_rows=1000, max_dims=16)


class Case(NamedTuple):
    """A bad data file and a fragment that its error message must contain."""

    path: Path
    expected: str


#: Files kept in tests/corpus/ -> expected message fragment.
STATIC_CASES: list[tuple[str, str]] = [
    ("empty.csv", "file is empty"),
    ("blank.csv", "only blank or comment ('#') lines"),
    ("header_only.csv", "only a header row (line 1), no data rows"),
    ("text_in_numeric.csv", "line 3, column 2 ('y'): expected a number, found 'abc'"),
    ("only_text.csv", "no numeric columns: every column is text: 'name' (not numeric: 'Alice', 'Bob', 'Carol'"),
    ("stray_number.csv", "line 4, column 1 ('id'): expected text, as in the rest of this column ('a1' on line 2), "
     "found the number '17'"),
    ("empty_cell.csv", "line 3, column 2 ('y'): empty cell"),
    ("nan.csv", "line 3, column 1 ('x'): found NaN"),
    ("inf.csv", "line 2, column 2: found infinite value (inf)"),
    ("ragged.csv", "line 4: expected 2 fields (as on line 1), found 3"),
    ("single_row.csv", "too few rows: found 1"),
    ("identical.csv", "all 5 points are identical (zero variance)"),
    ("huge_values.csv", "line 3, column 1 ('x'): value 3e+31 exceeds 1e+30"),
    ("garbage.csv", "binary data, not a text table (NUL byte"),
    ("latin1.csv", "not UTF-8 text (byte 0xe9 at offset 4)"),
    ("utf16.txt", "UTF-16 text"),
    ("data.xlsx", "unsupported file type ('.xlsx')"),
    ("strings.npy", "non-numeric dtype <U1"),
    ("complex.npy", "complex dtype complex128"),
    ("cube.npy", "shape (2, 2, 2); expected a 1-D or 2-D array"),
    ("nan.npy", "row 1, column 2 (index [0, 1]): found NaN"),
    ("not_npy.npy", "not a .npy file"),
    ("truncated.npy", "truncated: shape (10,) needs 80 bytes of data, found 72"),
    ("npz_empty.npz", "expected exactly one array in the .npz, found no arrays"),
    ("npz_two.npz", "expected exactly one array in the .npz, found 2 arrays: a, b"),
]

#: Files that `materialize_corpus` writes (their size depends on the limits) -> expected fragment.
GENERATED_CASES: list[tuple[str, str]] = [
    ("missing.csv", "file not found"),
    ("folder.csv", "not a regular file"),
    ("object.npy", "object dtype (Python objects); refusing to unpickle"),
    ("oversize.csv", "over the size limit"),
    ("too_many_rows.csv", "too many rows"),
    ("too_many_columns.csv", "too many columns"),
    ("too_many_rows.npy", "too many rows"),
    ("npz_bomb.npz", "array 'zeros' (decompressed) is"),
]

#: Every bad case: (file name, expected message fragment).
CASES: list[tuple[str, str]] = STATIC_CASES + GENERATED_CASES
#: Cases that the CLI and the explorer read as images (an array of 3 dimensions), not as a table: the fragment of
#: the image loader's message they get there instead.
IMAGE_ROUTE: dict[str, str] = {"cube.npy": "all 2 images are identical"}

#: Files kept in tests/corpus/ that load, with the shape and column names they load as.
GOOD_FILES: list[tuple[str, tuple[int, int], tuple[str, ...]]] = [
    ("good_header.csv", (5, 2), ("x", "y")),
    ("good_noheader.tsv", (4, 3), ("c1", "c2", "c3")),
    ("good_whitespace.txt", (3, 2), ("x", "y")),
    ("good_semicolon.csv", (2, 2), ("width", "height")),
    ("decimal_comma.csv", (2, 2), ("x", "y")),
    ("single_column.csv", (4, 1), ("value",)),
    ("iris_text.csv", (6, 4), ("sepal_length", "sepal_width", "petal_length", "petal_width")),
    ("good.npy", (4, 3), ("c1", "c2", "c3")),
    ("good.npz", (5, 2), ("x", "y")),
]


def _npy_bytes(array: np.ndarray) -> bytes:
    """`array` in .npy format (never pickled)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _distinct_rows(rows: int, cols: int) -> str:
    """A header-less CSV of `rows` distinct rows of `cols` small integers."""
    return "".join(",".join(str(i + j) for j in range(cols)) + "\n" for i in range(rows))


def _write_object_npy(path: Path, limits: Limits) -> None:
    """An object array, saved with pickling allowed (the loader must never unpickle it)."""
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _write_oversize(path: Path, limits: Limits) -> None:
    """One byte over the size limit, as a sparse file (the loader must refuse it before reading)."""
    with open(path, "wb") as f:
        f.truncate(limits.max_bytes + 1)


def _write_npz_bomb(path: Path, limits: Limits) -> None:
    """A small compressed .npz whose one array is larger than the size limit once decompressed."""
    np.savez_compressed(path, zeros=np.zeros(limits.max_bytes // 8 + 1))


_WRITERS: dict[str, Callable[[Path, Limits], object]] = {
    "missing.csv": lambda path, limits: None,
    "folder.csv": lambda path, limits: path.mkdir(),
    "object.npy": _write_object_npy,
    "oversize.csv": _write_oversize,
    "too_many_rows.csv": lambda path, limits: path.write_text(_distinct_rows(limits.max_rows + 1, 2)),
    "too_many_columns.csv": lambda path, limits: path.write_text(_distinct_rows(3, limits.max_dims + 1)),
    "too_many_rows.npy": lambda path, limits: path.write_bytes(
        _npy_bytes(np.arange(2 * (limits.max_rows + 1), dtype=np.float32).reshape(-1, 2))
    ),
    "npz_bomb.npz": _write_npz_bomb,
}


def materialize_corpus(folder: Path, limits: Limits = CORPUS_LIMITS) -> list[Case]:
    """Write every bad case into `folder` (which must exist) and return them with their fragments.

    Args:
        folder: an empty folder, e.g. pytest's tmp_path.
        limits: the limits the loader will be called with; the generated over-size and too-many files
            are sized to just exceed them (pass `Limits()` to test a caller that uses the defaults).

    Returns:
        one `Case` per entry of `CASES`, in that order.
    """
    for name, _ in STATIC_CASES:
        shutil.copyfile(CORPUS_DIR / name, folder / name)
    for name, _ in GENERATED_CASES:
        _WRITERS[name](folder / name, limits)
    return [Case(folder / name, expected) for name, expected in CASES]
