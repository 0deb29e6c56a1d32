"""Load a user's data file (CSV / TSV / TXT / NPY / NPZ) into a float32 [n, d] array, safely.

Uploaded files are untrusted: this module never unpickles, checks sizes before reading or decompressing,
and turns every problem into a `DataError` whose message names the file and says what was expected and
what was found (with the line / row and column where it applies), so the CLI and the UI can show it as is.

Text tables are UTF-8 (a byte order mark is dropped; CRLF, CR and LF line ends) and are parsed with the
standard `csv` module, so quoted cells may hold the delimiter, a doubled quote or line breaks (as
spreadsheets write them: `"income, USD",food`). The delimiter is chosen among tab, ';', ',' and runs of
whitespace by splitting the first lines with `csv.reader` (see `_sniff_delimiter`); spaces after a
delimiter and around a line are ignored. One header row is recognised when none of the first row's cells
is a number (so `5.1,3.5,setosa` is a data row, `length,width,species` a header). Blank lines and lines
starting with '#' (as `numpy.savetxt` writes headers) are skipped. In a ';'- or tab-separated file a cell
with one decimal comma ('1,5', as spreadsheets in European locales write it) reads as 1.5; with ',' or
whitespace as the delimiter it is refused, with a hint ('1,000' may be a thousands mark there). Line
numbers in messages are those of the file (1-based), where a row starts, whatever blank, comment or
multi-line rows precede it. The file is read a chunk of rows at a time, so that the row limit stops a
huge file early and a row with too many fields is counted before it is split.

Text columns. A column of a text table is *numeric* when every one of its data cells is a number (as
float() reads it, 'nan' and 'inf' included, which are then refused as not finite; or with a decimal
comma where those are read). It is a *text column* when none of its data cells is a finite number nor
almost one (see below): labels such as 'setosa', ids such as 'a17', dates, 'nan' among words, and empty
cells are all fine there; a column whose cells are all empty is a text column too ("empty"). A text
column is left out: `Table.values` and `Table.columns` hold the numeric columns only, `Table.dropped`
says which columns were left out and why, and `Table.text` keeps their (stripped) cells, one per row.
A column with both finite numbers and other cells is refused: at its first cell that is not a number
(empty ones included), or, when its text cells so far outnumber its numbers, at its first number. A
cell that is almost a number counts as a number for this rule, so that its message and hint are given
rather than the column left out: one that float() reads once its commas are points ('1,5' where decimal
commas are not read), or a quoted cell over several lines whose first line is a number (a closing quote
missing). The rule is applied a chunk of rows at a time, so a mixed column stops a long file early: the
error names the first such cell, in reading order, among the columns found mixed in the same chunk. A
file left with no numeric column is refused ("no numeric columns: ..."). Without a header, columns are
named by `generated_columns` from their position in the file: x and y in a file of two columns, c1 to cD in
one of D (a name does not depend on which columns are left out); x0, x1 would read as flow matching's noise
and data. .npy and .npz arrays are numeric by construction: they have no text columns.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat

import numpy as np

from ..maths.columns import generated_columns  # re-exported: the names of a header-less file's columns

__all__ = [
    "generated_columns",
    "DEFAULT_LIMITS",
    "MAX_ABS_VALUE",
    "SUPPORTED_SUFFIXES",
    "DataError",
    "DroppedColumn",
    "Limits",
    "ZIP_MAGICS",
    "Table",
    "check_size",
    "load_array",
    "load_bytes",
    "load_table",
    "load_table_bytes",
    "read_npy",
    "read_npz_member",
    "require_positive",
]

#: Values larger than this in magnitude are refused: squaring them while normalising would overflow.
MAX_ABS_VALUE = 1e30

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_TEXT_SUFFIXES, ".npy", ".npz")
_DELIMITERS = ("\t", ";", ",")  # in order of preference when several fit
_DECIMAL_COMMA_DELIMITERS = ("\t", ";")  # where a cell '1,5' can only mean 1.5
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")  # a (stripped) number with a decimal comma
_POINT = operator.methodcaller("replace", ",", ".")
_SNIFF_LINES = 20
_FIRST_CHUNK = 1024  # records read before the width of a row (hence the chunk size) is known
_CHUNK_CELLS = 1 << 18  # text cells converted at a time: bounds the memory of their Python strings
_LONG_ROW = 1 << 16  # characters; longer rows are counted without splitting them (a hostile one-liner)
_FIELD = re.compile(r"\S+")  # a whitespace-separated field: \s is str.split()'s whitespace
_CONTENT_LINE = re.compile(r"^[^\S\n]*([^\s#][^\n]*)", re.MULTILINE)  # not blank, not a comment
_BLOCK_CHARS = 1 << 16  # text split into lines a block at a time: ~1 MB of Python strings for short lines
_NPY_MAGIC = b"\x93NUMPY"
#: The first bytes of a zip archive (.npz, a .zip of images): one with members; an empty one.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float
# What a cell that counts as a number (see _Dialect.counts_as_number) must be, up to its first line end: a
# loose pattern of a float, decimal commas allowed, to skip text cells (dates too) without a Python call
# per cell. _NUMBER_CELL finds such cells among a column's cells joined by NUL (which no decoded text holds),
# with a NUL before the first and after the last.
_FLOAT_LIKE = r"\s*[+-]?(?=[.,_]*\d)[\d.,_]+(?:[eE][+-]?[\d_]+)?[^\S\n]*"  # (linear backtracking)
_NUMBER_LIKE = re.compile(_FLOAT_LIKE + r"(?:\n|$)")
_NUMBER_CELL = re.compile(r"\x00" + _FLOAT_LIKE + r"(?=[\n\x00])")
_SHOWN_VALUES = 3  # distinct values of a text column named in its reason
_DEDUPLICATE = 4096  # distinct labels of a text column stored once each (labels repeat; ids do not)


class DataError(ValueError):
    """A data file that cannot be used; `str()` is "<file>: <problem>", ready to show to a person.

    Attributes:
        file: the file's display name (the upload's name, or the path given).
        problem: what is wrong, with the location and what was expected and found.
    """

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(file, problem)
        self.file = file
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


def require_positive(limits: object) -> None:
    """ValueError naming the first field of a limits dataclass (`Limits`, `ImageLimits`) that is below 1."""
    for limit, value in vars(limits).items():
        if value < 1:
            raise ValueError(f"{type(limits).__name__}.{limit} must be at least 1, got {value}")


@dataclass(frozen=True)
class Limits:
    """Upper bounds on an input, so that a hostile or mistaken file cannot exhaust memory or time.

    Attributes:
        max_bytes: largest file (and largest decompressed .npz member), in bytes.
        max_rows: most data rows (points).
        max_dims: most columns (dimensions).
    """

    max_bytes: int = 50 * 2**20
    max_rows: int = 1_000_000
    max_dims: int = 64

    def __post_init__(self) -> None:
        require_positive(self)


DEFAULT_LIMITS = Limits()



@dataclass(frozen=True)
class DroppedColumn:
    """A column of a text table that was left out of `Table.values` because it is text, not numbers.

    Attributes:
        name: its header name, or its generated one (`generated_columns`) when the file has no header.
        index: its 0-based position among the file's columns.
        reason: why, for people, e.g. "not numeric: 'setosa', 'versicolor', 'virginica'; 3 distinct values".
    """

    name: str
    index: int
    reason: str


@dataclass(frozen=True, eq=False)
class Table:
    """A loaded data set: finite float32 values [n, d] (n >= 2, d >= 1), a name per column, text left out.

    Attributes:
        values: the points (the numeric columns), float32 [n, d], C-contiguous.
        columns: one unique name per numeric column: the header's, or when the file has none its position's
            generated name (`generated_columns`, text columns counted).
        dropped: the text columns left out, in file order (none for .npy / .npz).
        text: each dropped column's name -> its stripped cells, one per row of `values`, in that order
            (labels for conditional generation).
        header: whether the names come from a header row.
    """

    values: np.ndarray
    columns: tuple[str, ...]
    dropped: tuple[DroppedColumn, ...] = ()
    text: dict[str, tuple[str, ...]] = field(default_factory=dict)
    header: bool = False


@dataclass(frozen=True, eq=False)
class _Parsed:
    """Numbers read from a file (float64 [n, d]), how to name a cell's place, and the text columns left out."""

    values: np.ndarray
    columns: tuple[str, ...]
    locate: Callable[[int, int], str]
    dropped: tuple[DroppedColumn, ...] = ()
    text: dict[str, tuple[str, ...]] = field(default_factory=dict)
    header: bool = False


def load_table(path: str | os.PathLike[str], *, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Table:
    """Load a data file from disk into a `Table`, checking it thoroughly (see the module docstring).

    Args:
        path: the file. Its format comes from the extension of `name` if that has one, else of `path`.
        name: the name to show in messages (an upload's original name when `path` is a temporary file);
            defaults to `path`.
        limits: size, row and column bounds; the size is checked before anything is read.

    Returns:
        the values (float32 [n, d], finite, n >= 2, not all rows identical) of the numeric columns, their
        names, and the text columns left out (see the module docstring for the rule).

    Raises:
        DataError: for every problem with the file; the message names the file.
    """
    display = os.fspath(path) if name is None else name
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(display, "file not found") from None
    except OSError as exc:
        raise DataError(display, f"cannot access the file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(display, "not a regular file")
    suffix = _suffix(display, os.fspath(path))
    check_size(display, info.st_size, limits.max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)  # + 1: notice a file that grew after stat
    except OSError as exc:
        raise DataError(display, f"cannot read the file ({exc.strerror})") from None
    check_size(display, len(data), limits.max_bytes)
    return _parse(data, display, suffix, limits)


def load_table_bytes(data: bytes, name: str, *, limits: Limits = DEFAULT_LIMITS) -> Table:
    """Load a data file held in memory (an upload) into a `Table`; the format comes from `name`'s extension.

    Args:
        data: the file's bytes.
        name: the file's name, shown in messages and used for its extension.
        limits: size, row and column bounds.

    Returns:
        as `load_table`.

    Raises:
        DataError: for every problem with the data; the message names the file.
    """
    suffix = _suffix(name, name)
    check_size(name, len(data), limits.max_bytes)
    return _parse(bytes(data), name, suffix, limits)


def load_array(path: str | os.PathLike[str], *, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """`load_table(...).values`: a user's data file as a finite float32 array [n, d], n >= 2, d >= 1."""
    return load_table(path, name=name, limits=limits).values


def load_bytes(data: bytes, name: str, *, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """`load_table_bytes(...).values`: an uploaded file as a finite float32 array [n, d]."""
    return load_table_bytes(data, name, limits=limits).values


# --- dispatch and checks common to all formats ----------------------------------------------------------


def _suffix(display: str, path: str) -> str:
    """The lower-case extension of the display name, else of the path; DataError if unsupported."""
    suffix = os.path.splitext(display)[1].lower() or os.path.splitext(path)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        found = f"'{suffix}'" if suffix else "no extension"
        raise DataError(display, f"unsupported file type ({found}); expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    return suffix


def _megabytes(n: int) -> str:
    """A size for people: megabytes, with the exact byte count (small test limits stay readable)."""
    return f"{n / 2**20:.2f} MB ({n:,} bytes)"


def check_size(display: str, size: int, max_bytes: int, what: str = "file") -> None:
    """DataError naming `display` when `size` bytes (of a file, or of `what`) exceed `max_bytes`."""
    if size > max_bytes:
        raise DataError(display, f"{what} is {_megabytes(size)}, over the size limit of {_megabytes(max_bytes)}")


def _check_columns(display: str, cols: int, limits: Limits) -> None:
    """DataError for too many columns (checked before any value is converted)."""
    if cols > limits.max_dims:
        raise DataError(display, f"too many columns: {cols:,} (the limit is {limits.max_dims:,})")


def _check_rows(display: str, rows: int, limits: Limits, *, counted_so_far: bool = False) -> None:
    """DataError for too many rows; a text file is stopped as soon as it passes the limit."""
    if rows > limits.max_rows:
        found = f"more than {limits.max_rows:,}" if counted_so_far else f"{rows:,}"
        raise DataError(display, f"too many rows: {found} data rows (the limit is {limits.max_rows:,})")


def _parse(data: bytes, display: str, suffix: str, limits: Limits) -> Table:
    """Read the bytes in the format of `suffix`, then apply the checks every format shares."""
    if not data:
        raise DataError(display, "file is empty (0 bytes)")
    if suffix == ".npy":
        parsed = _parse_npy(data, display, limits)
    elif suffix == ".npz":
        parsed = _parse_npz(data, display, limits)
    else:
        parsed = _parse_text(data, display, limits)
    return _validate(parsed, display)


def _validate(parsed: _Parsed, display: str) -> Table:
    """Refuse too few rows, non-finite or huge values and constant data (constant columns are fine); to float32."""
    values = parsed.values
    if values.shape[1] == 0:
        raise DataError(display, f"no columns: found an array of shape {values.shape}")
    if len(values) < 2:
        raise DataError(display, f"too few rows: found {len(values)} data row(s), need at least 2")
    _refuse_first(display, parsed, ~np.isfinite(values), _describe_non_finite)
    _refuse_first(display, parsed, np.abs(values) > MAX_ABS_VALUE, _describe_huge)
    x = np.ascontiguousarray(values, dtype=np.float32)
    if (x == x[0]).all():
        raise DataError(display, f"all {len(x):,} points are identical (zero variance): there is nothing to learn from")
    return Table(values=x, columns=parsed.columns, dropped=parsed.dropped, text=parsed.text, header=parsed.header)


def _refuse_first(display: str, parsed: _Parsed, bad: np.ndarray, describe: Callable[[float], str]) -> None:
    """DataError naming the first cell (in reading order) where `bad` is true, if any."""
    if bad.any():
        i, j = divmod(int(np.argmax(bad)), bad.shape[1])
        raise DataError(display, f"{parsed.locate(i, j)}: {describe(float(parsed.values[i, j]))}")


def _describe_non_finite(value: float) -> str:
    """Message for a NaN or an infinity."""
    kind = "NaN (not a number)" if np.isnan(value) else f"infinite value ({value})"
    return f"found {kind}; all values must be finite"


def _describe_huge(value: float) -> str:
    """Message for a value beyond MAX_ABS_VALUE."""
    return f"value {value:.3g} exceeds {MAX_ABS_VALUE:.0e} in magnitude (risk of overflow when normalising)"


# --- .npy and .npz ---------------------------------------------------------------------------------------


def _parse_npy(data: bytes, display: str, limits: Limits, member: str = "") -> _Parsed:
    """Read a .npy file (or one .npz member) of a table (1-D or 2-D) without unpickling."""
    where = f"array '{member}'" if member else "the array"

    def check_shape(shape: tuple[int, ...]) -> None:
        if len(shape) not in (1, 2):
            raise DataError(display, f"{where} has shape {shape}; expected a 1-D or 2-D array")
        _check_columns(display, shape[1] if len(shape) == 2 else 1, limits)
        _check_rows(display, shape[0], limits)

    array = read_npy(data, display, member, check_shape)
    rows, cols = array.shape[0], array.shape[1] if array.ndim == 2 else 1
    if array.size == 0:
        return _Parsed(np.empty((rows, cols)), generated_columns(cols), _array_location)
    return _Parsed(array.reshape(rows, cols).astype(np.float64), generated_columns(cols), _array_location)


def read_npy(data: bytes, display: str, member: str = "",
             check_shape: Callable[[tuple[int, ...]], None] | None = None) -> np.ndarray:
    """The array held in .npy bytes (or an .npz member), of any rank, as a read-only view of `data`.

    Never unpickles: the header is parsed first, object / complex / structured dtypes are refused, then
    `check_shape` (the caller's rank and size limits) sees the shape before the length of the data is
    checked against it. Raises DataError naming the file (and the member).
    """
    where = f"array '{member}'" if member else "the array"
    if not data.startswith(_NPY_MAGIC):
        found = f"member '{member}' of the .npz is not a .npy array" if member else "not a .npy file"
        raise DataError(display, f"{found} (it does not start with the NumPy magic bytes)")
    dtype, shape, fortran, offset = _read_npy_header(data, display, where)
    _check_npy_dtype(dtype, display, where)
    if check_shape is not None:
        check_shape(shape)
    count = math.prod(shape)
    if len(data) - offset < count * dtype.itemsize:
        raise DataError(
            display,
            f"{where} is truncated: shape {shape} needs {count * dtype.itemsize:,} bytes of data, "
            f"found {len(data) - offset:,}",
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def _read_npy_header(data: bytes, display: str, where: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, data offset) from a .npy header, never executing or unpickling."""
    fp = io.BytesIO(data)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(fp)
        reader = readers.get(version)
        if reader is None:
            raise DataError(display, f"{where} uses .npy format version {version}, which is not supported")
        shape, fortran, dtype = reader(fp)
        if any(dim < 0 for dim in shape):
            raise ValueError(f"negative dimension in shape {shape}")
    except DataError:
        raise
    except Exception as exc:  # numpy's header parser raises assorted types on hostile input
        raise DataError(display, f"{where} has a corrupt .npy header ({exc})") from None
    return dtype, tuple(shape), bool(fortran), fp.tell()


def _check_npy_dtype(dtype: np.dtype, display: str, where: str) -> None:
    """Accept bool, int and float dtypes; refuse object (never unpickled), complex and anything else."""
    if dtype.hasobject:
        raise DataError(display, f"{where} has object dtype (Python objects); refusing to unpickle it")
    if dtype.kind == "c":
        raise DataError(display, f"{where} has complex dtype {dtype}; expected real numbers")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(display, f"{where} has non-numeric dtype {dtype}; expected bool, int or float")


def _array_location(i: int, j: int) -> str:
    """Where cell [i, j] of an array is, for people (1-based) and for numpy (0-based)."""
    return f"row {i + 1}, column {j + 1} (index [{i}, {j}])"


def _parse_npz(data: bytes, display: str, limits: Limits) -> _Parsed:
    """Read a .npz archive that holds exactly one array (of a table), bounding its decompressed size."""
    raw, member = read_npz_member(data, display, limits.max_bytes)
    return _parse_npy(raw, display, limits, member=member)


def read_npz_member(data: bytes, display: str, max_bytes: int) -> tuple[bytes, str]:
    """The .npy bytes and the name of the one array of a .npz archive, its decompressed size bounded by
    `max_bytes` before and while it is read; DataError naming the file otherwise."""
    if not data.startswith(ZIP_MAGICS):
        raise DataError(display, "not a .npz archive (it does not start with the zip magic bytes)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) != 1:
                names = [_member_name(info) for info in infos]
                found = "no arrays" if not names else f"{len(names)} arrays: {', '.join(names)}"
                raise DataError(display, f"expected exactly one array in the .npz, found {found}")
            member = _member_name(infos[0])
            check_size(display, infos[0].file_size, max_bytes, what=f"array '{member}' (decompressed)")
            with archive.open(infos[0]) as f:
                raw = f.read(max_bytes + 1)
    except DataError:
        raise
    except Exception as exc:  # zipfile raises many undocumented types (struct, zlib, EOF...) on bad input
        raise DataError(display, f"corrupt .npz archive ({type(exc).__name__}: {exc})") from None
    check_size(display, len(raw), max_bytes, what=f"array '{member}' (decompressed)")
    return raw, member


def _member_name(info: zipfile.ZipInfo) -> str:
    """The key numpy gives a .npz member: its file name without '.npy'."""
    return info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename


# --- text tables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    """How a text table splits into cells (a delimiter, or None: runs of whitespace) and reads numbers."""

    delimiter: str | None

    @property
    def decimal_comma(self) -> bool:
        """Whether '1,5' means 1.5: unambiguous only when ',' cannot be the delimiter or a thousands mark."""
        return self.delimiter in _DECIMAL_COMMA_DELIMITERS

    def reader(self, lines: Iterable[str]) -> Iterator[list[str]]:
        """csv.reader over `lines`; whitespace-separated lines must have been collapsed to single spaces."""
        return csv.reader(lines, delimiter=self.delimiter or " ", quotechar='"', skipinitialspace=True)

    def is_number(self, cell: str) -> bool:
        """Whether `floats` accepts the cell: float() does, or it is a number with a decimal comma."""
        return _is_float(cell) or (self.decimal_comma and _DECIMAL_COMMA.fullmatch(cell.strip()) is not None)

    def counts_as_number(self, cell: str) -> bool:
        """Whether the cell is a finite number or almost one (see the module docstring): its column is not text."""
        shown = cell.strip()
        first = shown.partition("\n")[0].rstrip()  # a quoted cell over lines, as a missing '"' makes
        return any(_is_finite(c) or _is_finite(c.replace(",", ".")) for c in {shown, first})

    def floats(self, cells: list[str]) -> np.ndarray:
        """The cells as float64, in C (map, fromiter, compress); ValueError if one is not a number."""
        try:
            return np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
        except ValueError:
            if not self.decimal_comma:
                raise
        values = np.fromiter(map(float, map(_POINT, cells)), dtype=np.float64, count=len(cells))
        # float() also reads '5.' and '1_0.5': only the cells that match _DECIMAL_COMMA may have had a comma
        with_comma = compress(cells, map(operator.contains, cells, repeat(",")))
        if not all(map(_DECIMAL_COMMA.fullmatch, map(str.strip, with_comma))):
            raise ValueError("a comma that is not a decimal comma")
        return values


def _is_finite(cell: str) -> bool:
    """Whether Python's float() reads the cell as a finite number."""
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _is_float(cell: str) -> bool:
    """Whether Python's float() accepts the cell."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


class _Lines:
    """The file's lines as csv.reader should see them, one item per line so that its line_num is the file's.

    Lines are stripped (a blank one becomes ''); comment lines ('#' first, even within a quoted cell that
    spans lines) become ''; whitespace-separated lines are collapsed to single spaces; a line longer than
    _LONG_ROW characters with more fields than `max_dims` becomes '' and is noted in `wide` (line -> fields):
    a hostile one-line file is counted, never split into millions of strings. In blocks with a '"', lines
    keep a '\\n', so that a quoted cell that spans lines keeps its line breaks.
    """

    def __init__(self, text: str, dialect: _Dialect, max_dims: int) -> None:
        self.text = text
        self.dialect = dialect
        self.max_dims = max_dims
        self.wide: dict[int, int] = {}

    def __iter__(self) -> Iterator[str]:
        """Every line of the text, prepared; read a block at a time (a Python string per line of a block)."""
        return chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[list[str]]:
        """The prepared lines of each block of the text."""
        first = 1
        for block in _text_blocks(self.text, _BLOCK_CHARS):
            lines = list(map(str.strip, block.split("\n")))
            if "#" in block:
                lines = ["" if line[:1] == "#" else line for line in lines]
            if max(map(len, lines)) > _LONG_ROW:
                self._blank_wide(lines, first)
            if self.dialect.delimiter is None:
                lines = list(map(" ".join, map(str.split, lines)))
            if '"' in block:
                lines = [line + "\n" for line in lines]
            first += len(lines)
            yield lines

    def _blank_wide(self, lines: list[str], first: int) -> None:
        """Blank (and note in `wide`) the long lines of a block that have more than max_dims fields."""
        for k, line in enumerate(lines):
            if len(line) > _LONG_ROW:
                fields = self._count_fields(line)
                if fields > self.max_dims:
                    self.wide[first + k] = fields
                    lines[k] = ""

    def _count_fields(self, line: str) -> int:
        """The fields of a long line, counted in C without splitting it; quoted delimiters count too.

        Only a line over _LONG_ROW characters is counted so, and no table has such lines: this is a guard
        against hostile files, which must cost neither memory nor much time (50 MB of '"",' is 17e6 fields).
        """
        if self.dialect.delimiter is None:
            return sum(1 for _ in _FIELD.finditer(line))
        return line.count(self.dialect.delimiter) + 1


def _text_blocks(text: str, size: int) -> Iterator[str]:
    """Consecutive pieces of about `size` characters, split at (and without) a newline.

    A final newline ends the last line rather than starting an empty one, so the pieces' lines are exactly
    the file's lines.
    """
    stop = len(text) - text.endswith("\n")
    start = 0 if text else 1
    while start <= stop:
        newline = text.find("\n", start + size, stop)
        end = stop if newline < 0 else newline
        yield text[start:end]
        start = end + 1


@dataclass(frozen=True)
class _Chunk:
    """Consecutive non-blank records of a text table: their cells (row after row), widths and lines.

    Attributes:
        cells: the cells of all records, one after another.
        widths: the number of fields of each record.
        starts: the line of the file where each record starts (1-based).
        ends: the line where it ends (later than `starts` for a quoted cell that spans lines).
    """

    cells: list[str]
    widths: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        """The number of records."""
        return len(self.widths)

    def head(self, count: int, width: int) -> _Chunk:
        """The first `count` records, which the caller has checked are all `width` fields wide."""
        return _Chunk(self.cells[: count * width], self.widths[:count], self.starts[:count], self.ends[:count])

    def without_first(self) -> _Chunk:
        """All records but the first (a header row)."""
        return _Chunk(self.cells[int(self.widths[0]) :], self.widths[1:], self.starts[1:], self.ends[1:])


class _Records:
    """The records of a text table, read with csv.reader a chunk at a time, with their lines in the file.

    A chunk's rows are flattened into one list of cells as they are read: a Python list per row kept
    alive makes a 1e6-row file several times slower (the garbage collector keeps scanning them).
    """

    def __init__(self, text: str, dialect: _Dialect, display: str, max_dims: int) -> None:
        self.display = display
        self.lines = _Lines(text, dialect, max_dims)
        self.reader = dialect.reader(self.lines)
        self.last_line = 0  # where the last record read ends

    def read(self, count: int) -> _Chunk | None:
        """The non-blank records among the next `count` records (blank lines are records); None at the end."""
        widths: list[int] = []
        ends: list[int] = []
        reader = self.reader

        def note(row: list[str]) -> list[str]:
            """Record the width and last line of a row as it passes."""
            widths.append(len(row))
            ends.append(reader.line_num)  # type: ignore[attr-defined]
            return row

        try:
            cells = list(chain.from_iterable(map(note, islice(reader, count))))
        except csv.Error as exc:
            line = (ends[-1] if ends else self.last_line) + 1
            raise DataError(self.display, f"line {line}: {_describe_csv_error(exc)}") from None
        if not ends:
            return None
        end = np.array(ends, dtype=np.intp)
        start = np.concatenate(([self.last_line], end[:-1])) + 1
        width = np.array(widths, dtype=np.intp)
        self.last_line = ends[-1]
        for wide in [line for line in self.lines.wide if line <= ends[-1]]:  # counted, not split: see _Lines
            width[np.searchsorted(end, wide)] = self.lines.wide.pop(wide)
        keep = np.flatnonzero(width)
        return _Chunk(cells, width[keep], start[keep], end[keep])


def _describe_csv_error(exc: csv.Error) -> str:
    """What csv.reader could not parse; in practice a cell over its size limit, from a missing '"'."""
    if "field larger than field limit" in str(exc):
        return (
            f"a cell of the row that starts here is longer than {csv.field_size_limit():,} characters "
            "(is a closing '\"' missing?)"
        )
    return f"cannot read the row that starts here ({exc})"


def _parse_text(data: bytes, display: str, limits: Limits) -> _Parsed:
    """Read a delimited text table: sniff the delimiter, detect a header, convert a chunk of rows at a time."""
    text = _decode(data, display)
    dialect = _Dialect(_sniff_delimiter(_sample_lines(text)))
    records = _Records(text, dialect, display, limits.max_dims)
    table: _TextTable | None = None
    blocks: list[np.ndarray] = []
    rows, count = 0, _FIRST_CHUNK
    while (chunk := records.read(count)) is not None:
        if not len(chunk):
            continue
        if table is None:
            table, chunk = _first_row(chunk, dialect, display, limits)
        rows += len(chunk)
        _check_rows(display, rows, limits, counted_so_far=True)  # before converting: at most a chunk too many
        blocks.append(table.convert(chunk))
        count = max(1, _CHUNK_CELLS // table.width)
    if table is None:
        raise DataError(display, "no data: the file has only blank or comment ('#') lines")
    if not rows:
        raise DataError(display, f"only a header row (line {table.first_no}), no data rows")
    return table.finish(np.concatenate(blocks))


def _first_row(chunk: _Chunk, dialect: _Dialect, display: str, limits: Limits) -> tuple[_TextTable, _Chunk]:
    """The table's shape and names from its first record, and the chunk less that record if it is a header."""
    width, first_no = int(chunk.widths[0]), int(chunk.starts[0])
    _check_columns(display, width, limits)
    first = chunk.cells[:width]
    header = not any(map(dialect.is_number, first))
    names = _header_names(first) if header else None
    table = _TextTable(display, dialect, width, first_no, names)
    return table, chunk.without_first() if header else chunk


def _decode(data: bytes, display: str) -> str:
    """UTF-8 text (a BOM is dropped) with '\\n' line ends; DataError for binary data or another encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # e.g. Excel's "Unicode text"
        raise DataError(display, "UTF-16 text (it starts with a UTF-16 byte order mark); save the file as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(display, f"binary data, not a text table (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise DataError(
            display, f"not UTF-8 text (byte 0x{bad:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _sample_lines(text: str) -> list[str]:
    """The first _SNIFF_LINES lines that are neither blank nor comments, stripped, cut to _LONG_ROW characters."""
    found = islice(_CONTENT_LINE.finditer(text), _SNIFF_LINES)
    return [text[m.start(1) : min(m.end(1), m.start(1) + _LONG_ROW)].rstrip() for m in found]


def _sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter of a sample of lines: tab, ';' or ',' (None: runs of whitespace), quotes respected.

    Each candidate splits the sample with csv.reader. Preferred: the first (tab, then ';', then ',') that
    gives every row the same number (> 1) of fields, so that '1,5;2,5' is two cells with decimal commas;
    else the one that gives more than one field to most rows, if that is more than half of them (so that a
    ragged file is reported as ragged); else whitespace (a stray tab in a space-separated file does not make
    it tab-separated). csv.Sniffer is not used: it prefers ',' to ';' when both fit (decimal commas), and it
    gives up on one-column, ragged and whitespace-separated samples, which this rule handles.
    """
    widths = {delimiter: _sample_widths(lines, delimiter) for delimiter in _DELIMITERS}
    for delimiter in _DELIMITERS:
        if len(set(widths[delimiter])) == 1 and widths[delimiter][0] > 1:
            return delimiter
    split = {delimiter: sum(width > 1 for width in widths[delimiter]) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=split.__getitem__)  # the first of equals, as max keeps the first
    return best if 2 * split[best] > len(widths[best]) else None


def _sample_widths(lines: list[str], delimiter: str) -> list[int]:
    """The number of fields of each record of the sample split on `delimiter`; [] if csv cannot read it."""
    try:
        return [len(row) for row in _Dialect(delimiter).reader(lines)]
    except csv.Error:  # a cell over csv's size limit: a quote left open in a long sample
        return []


def _header_names(cells: list[str]) -> tuple[str, ...]:
    """Unique column names from a header row: a blank name becomes its position's generated name
    (`generated_columns`), a repeated one gets .1, .2, ..."""
    names: list[str] = []
    generated = generated_columns(len(cells))
    for j, cell in enumerate(cells):
        name = base = cell.strip().replace("\n", " ") or generated[j]  # a quoted name may span lines
        copy = 0
        while name in names:
            copy += 1
            name = f"{base}.{copy}"
        names.append(name)
    return tuple(names)


@dataclass
class _Column:
    """What the rows read so far say about one column of a text table: numeric, text, or mixed (refused).

    Attributes:
        number: the first cell that is a finite number or almost one, as (data row, cell); None if none yet.
        other: the first cell that is not a number, as (data row, cell); None if none yet.
        cells: every stripped cell while `number` is None (the column may be text); then None.
        labels: one string per distinct label stored (see _DEDUPLICATE); None once there are too many.
    """

    number: tuple[int, str] | None = None
    other: tuple[int, str] | None = None
    cells: list[str] | None = field(default_factory=list)
    labels: dict[str, str] | None = field(default_factory=dict)

    def keep(self, cells: list[str]) -> None:
        """Store a chunk's cells of a column that may be text, each distinct label once."""
        assert self.cells is not None
        stripped = list(map(str.strip, cells))
        if self.labels is not None:
            stripped = list(map(self.labels.setdefault, stripped, stripped))
            if len(self.labels) > _DEDUPLICATE:
                self.labels = None
        self.cells.extend(stripped)

    def saw_number(self, row: int, cell: str) -> None:
        """Note the column's first number: it is not text, so its cells need not be kept."""
        self.number = (row, cell)
        self.cells = self.labels = None


class _TextTable:
    """Converts the rows of one text table a chunk at a time, sorting its columns into numeric and text.

    It knows the table's shape and names (to name a cell's place), what each column's cells were so far
    (`_Column`), and the first line of every data row read (to name a cell of an earlier chunk).
    """

    def __init__(self, display: str, dialect: _Dialect, width: int, first_no: int,
                 names: tuple[str, ...] | None) -> None:
        self.display = display
        self.dialect = dialect
        self.width = width
        self.first_no = first_no
        self.names = names
        self.state = [_Column() for _ in range(width)]
        self.starts: list[np.ndarray] = []
        self.rows = 0

    def place(self, line: int, j: int) -> str:
        """'line 3, column 2', with the column's header name if there is one."""
        return f"line {line}, column {j + 1}" + (f" ({self.names[j]!r})" if self.names else "")

    def convert(self, chunk: _Chunk) -> np.ndarray:
        """Cells to float64 [len(chunk), width] (NaN in text cells); DataError at a ragged row or mixed column.

        The fast path converts all cells at once (while no column looks like text), else each column at once;
        a column with a cell that is not a number is then sorted by `_sort`. A ragged row is reported after
        the rows above it are checked.
        """
        ragged = np.flatnonzero(chunk.widths != self.width)
        if ragged.size:
            k = int(ragged[0])
            self.convert(chunk.head(k, self.width))
            line, end = int(chunk.starts[k]), int(chunk.ends[k])
            expected = f"expected {self.width} fields (as on line {self.first_no}), found {chunk.widths[k]}"
            if end > line:
                expected += f" (a quoted cell makes it span lines {line}-{end}: is a closing '\"' missing?)"
            raise DataError(self.display, f"line {line}: {expected}")
        n, width = len(chunk), self.width
        unread: set[int] = set()
        values: np.ndarray | None = None
        if all(column.other is None for column in self.state):  # no text column so far: try all at once
            try:
                values = self.dialect.floats(chunk.cells).reshape(n, width)
            except ValueError:
                values = None
        if values is None:
            values = np.empty((n, width))
            for j in range(width):
                try:
                    values[:, j] = self.dialect.floats(chunk.cells[j::width])
                except ValueError:
                    values[:, j] = np.nan
                    unread.add(j)
        self._sort(chunk, values, unread)
        self.starts.append(chunk.starts)
        self.rows += n
        return values

    def _sort(self, chunk: _Chunk, values: np.ndarray, unread: set[int]) -> None:
        """Update each column's state with a chunk's cells; DataError at the first cell of a mixed column."""
        width, base = self.width, self.rows
        problems: list[tuple[int, int, str]] = []
        for j, column in enumerate(self.state):
            cells = chunk.cells[j::width]
            before = column.cells  # the cells before this chunk while the column may be text (keep extends it)
            if j in unread:
                if column.other is None:
                    k = next(k for k, cell in enumerate(cells) if not self.dialect.is_number(cell))
                    column.other = (base + k, cells[k])
                if column.number is None:
                    k = self._first_number(cells)
                    if k >= 0:
                        column.saw_number(base + k, cells[k])
                    else:
                        column.keep(cells)
            elif column.number is None:
                finite = np.isfinite(values[:, j])
                if finite.any():
                    k = int(np.argmax(finite))
                    column.saw_number(base + k, cells[k])
                else:
                    column.keep(cells)
            if column.number is not None and column.other is not None:
                problems.append(self._mixed(j, column, before, chunk))
        if problems:
            row, j, problem = min(problems)
            raise DataError(self.display, f"{self.place(self._line(row, chunk), j)}: {problem}")

    def _first_number(self, cells: list[str]) -> int:
        """The index of the first cell that counts as a number, or -1: candidates found by one regex search."""
        joined = "\x00" + "\x00".join(cells) + "\x00"
        for match in _NUMBER_CELL.finditer(joined):
            k = joined.count("\x00", 0, match.start())
            if self.dialect.counts_as_number(cells[k]):
                return k
        return -1

    def _mixed(self, j: int, column: _Column, before: list[str] | None, chunk: _Chunk) -> tuple[int, int, str]:
        """(data row, column, problem) for a column with numbers and other cells: at its first non-number,
        or, when most of its non-empty cells so far are text, at its first number."""
        assert column.number is not None and column.other is not None
        cells = chunk.cells[j :: self.width]
        if before is None:  # every cell before this chunk was a number
            numbers, words = self.rows, 0
        else:
            numbers, words = self._tally(before)
        more_numbers, more_words = self._tally(cells)
        if words + more_words <= numbers + more_numbers:
            row, cell = column.other
            return row, j, _describe_bad_cell(cell, self.dialect)
        row, cell = column.number
        earlier = before or []  # the rows before this chunk (all of them, if it has text)
        k, word = next((k, c) for k, c in enumerate(chain(earlier, cells)) if self._is_word(c))
        line = self._line(k if k < len(earlier) else self.rows + k - len(earlier), chunk)
        return row, j, (f"expected text, as in the rest of this column ({_shorten(word.strip())} on line {line}), "
                        f"found the number {_shorten(cell.strip())}: a column is left out as text only when none "
                        "of its cells is a number")

    def _is_word(self, cell: str) -> bool:
        """Whether a cell is text: not empty, not a number and not almost one ('nan' is a number, not finite)."""
        return bool(cell.strip()) and not self.dialect.is_number(cell) and not self.dialect.counts_as_number(cell)

    def _tally(self, cells: list[str]) -> tuple[int, int]:
        """(cells that count as numbers, cells that are text) among `cells`."""
        numbers = sum(1 for cell in cells if _NUMBER_LIKE.match(cell) and self.dialect.counts_as_number(cell))
        return numbers, sum(map(self._is_word, cells))

    def _line(self, row: int, chunk: _Chunk) -> int:
        """The line of the file where data row `row` starts (a row of `chunk`, the one being read, or before)."""
        if row >= self.rows:
            return int(chunk.starts[row - self.rows])
        return int(np.concatenate(self.starts)[row])

    def finish(self, values: np.ndarray) -> _Parsed:
        """The numeric columns of all rows read (`values`: every column), the text ones left out with their
        cells; DataError when no column is numeric."""
        names = self.names or generated_columns(self.width)
        text = [j for j, column in enumerate(self.state) if column.other is not None]
        dropped = tuple(DroppedColumn(names[j], j, _text_reason(self.state[j].cells or [])) for j in text)
        keep = [j for j in range(self.width) if j not in text]
        if not keep:
            listed = ", ".join(f"{d.name!r} ({d.reason})" for d in dropped)
            raise DataError(self.display, f"no numeric columns: every column is text: {listed}")
        numbers = np.concatenate(self.starts)
        labels = {names[j]: tuple(self.state[j].cells or ()) for j in text}
        return _Parsed(values[:, keep] if text else values, tuple(names[j] for j in keep),
                       lambda i, j: self.place(int(numbers[i]), keep[j]), dropped, labels, self.names is not None)


def _shorten(cell: str) -> str:
    """A cell for a message: quoted, and cut to 40 characters."""
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _text_reason(cells: list[str]) -> str:
    """Why a text column is left out, with a few of its values: "not numeric: 'a', 'b', ...; 9 distinct values"."""
    values = dict.fromkeys(cell for cell in cells if cell)
    if not values:
        return "empty: no cell has a value"
    shown = ", ".join(_shorten(value) for value in islice(values, _SHOWN_VALUES))
    if len(values) > _SHOWN_VALUES:
        shown += ", ..."
    count = f"{len(values):,} distinct value" + ("s" if len(values) > 1 else "")
    empty = sum(1 for cell in cells if not cell)
    if empty:
        count += f", {empty:,} empty cell" + ("s" if empty > 1 else "")
    return f"not numeric: {shown}; {count}"


def _describe_bad_cell(cell: str, dialect: _Dialect) -> str:
    """What was expected and found in a cell that is not a number, with a hint for decimal commas."""
    shown = cell.strip()
    if not shown:
        return "empty cell; expected a number"
    hint = ""
    if "\n" in shown:
        hint = "; the quoted cell spans lines: is a closing '\"' missing?"
    elif not dialect.decimal_comma and _is_float(shown.replace(",", ".")):
        hint = "; use '.' for decimals (decimal commas are read only in ';'- or tab-separated files)"
    return f"expected a number, found {_shorten(shown)}{hint}"
