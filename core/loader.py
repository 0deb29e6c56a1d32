"""Load a user's data file (CSV / TSV / TXT / NPY / NPZ) into a float32 [n, d] array, safely.

Uploaded files are untrusted: this module never unpickles, checks sizes before reading or decompressing,
and turns every problem into a `DataError` whose message names the file and says what was expected and
what was found (with the line / row and column where it applies), so the CLI and the UI can show it as is.

Text tables: the delimiter is sniffed among tab, ';', ',' and runs of whitespace; one header row is
recognised when none of the first row's cells is a number; blank lines and lines starting with '#' (as
`numpy.savetxt` writes headers) are skipped; line numbers in messages are those of the file (1-based).
"""

from __future__ import annotations

import io
import operator
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: Values larger than this in magnitude are refused: squaring them while normalising would overflow.
MAX_ABS_VALUE = 1e30

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_TEXT_SUFFIXES, ".npy", ".npz")
_DELIMITERS = ("\t", ";", ",")  # in order of preference when several fit
_SNIFF_LINES = 20
_CHUNK_CELLS = 1 << 18  # text cells converted at a time: bounds the memory of their Python strings
_LONG_ROW = 1 << 16  # characters; longer rows are counted without splitting them (a hostile one-liner)
_FIELD = re.compile(r"\S+")  # a whitespace-separated field: \s is str.split()'s whitespace
_BLOCK_CHARS = 1 << 20  # text read a block at a time when looking for rows
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float


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
        for field, value in vars(self).items():
            if value < 1:
                raise ValueError(f"Limits.{field} must be at least 1, got {value}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, eq=False)
class Table:
    """A loaded data set: finite float32 values [n, d] (n >= 2, d >= 1) and one name per column.

    Attributes:
        values: the points, float32 [n, d], C-contiguous.
        columns: one unique name per column: the header's, or "x0", "x1", ... when the file has none.
    """

    values: np.ndarray
    columns: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class _Parsed:
    """Numbers read from a file (float64 [n, d]) and how to name a cell's place in that file."""

    values: np.ndarray
    columns: tuple[str, ...]
    locate: Callable[[int, int], str]


def load_table(path: str | os.PathLike[str], *, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Table:
    """Load a data file from disk into a `Table`, checking it thoroughly (see the module docstring).

    Args:
        path: the file. Its format comes from the extension of `name` if that has one, else of `path`.
        name: the name to show in messages (an upload's original name when `path` is a temporary file);
            defaults to `path`.
        limits: size, row and column bounds; the size is checked before anything is read.

    Returns:
        the values (float32 [n, d], finite, n >= 2, not all rows identical) and column names.

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
    _check_size(display, info.st_size, limits)
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)  # + 1: notice a file that grew after stat
    except OSError as exc:
        raise DataError(display, f"cannot read the file ({exc.strerror})") from None
    _check_size(display, len(data), limits)
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
    _check_size(name, len(data), limits)
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


def _check_size(display: str, size: int, limits: Limits, what: str = "file") -> None:
    """DataError when `size` bytes exceed the limit."""
    if size > limits.max_bytes:
        raise DataError(display, f"{what} is {_megabytes(size)}, over the size limit of {_megabytes(limits.max_bytes)}")


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
    """Refuse too few rows, non-finite or huge values and constant data; convert to float32."""
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
    return Table(values=x, columns=parsed.columns)


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


def _generated_columns(d: int) -> tuple[str, ...]:
    """Column names for a file without a header: x0, x1, ..."""
    return tuple(f"x{j}" for j in range(d))


# --- .npy and .npz ---------------------------------------------------------------------------------------


def _parse_npy(data: bytes, display: str, limits: Limits, member: str = "") -> _Parsed:
    """Read a .npy file (or one .npz member) without unpickling: header first, then the raw buffer."""
    where = f"array '{member}'" if member else "the array"
    if not data.startswith(_NPY_MAGIC):
        found = f"member '{member}' of the .npz is not a .npy array" if member else "not a .npy file"
        raise DataError(display, f"{found} (it does not start with the NumPy magic bytes)")
    dtype, shape, fortran, offset = _read_npy_header(data, display, where)
    _check_npy_dtype(dtype, display, where)
    if len(shape) not in (1, 2):
        raise DataError(display, f"{where} has shape {shape}; expected a 1-D or 2-D array")
    rows, cols = shape[0], shape[1] if len(shape) == 2 else 1
    _check_columns(display, cols, limits)
    _check_rows(display, rows, limits)
    count = rows * cols
    if count == 0:
        return _Parsed(np.empty((rows, cols)), _generated_columns(cols), _array_location)
    if len(data) - offset < count * dtype.itemsize:
        raise DataError(
            display,
            f"{where} is truncated: shape {shape} needs {count * dtype.itemsize:,} bytes of data, "
            f"found {len(data) - offset:,}",
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    values = flat.reshape((rows, cols), order="F" if fortran else "C").astype(np.float64)
    return _Parsed(values, _generated_columns(cols), _array_location)


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
    """Read a .npz archive that holds exactly one array, bounding its decompressed size."""
    if not data.startswith(_ZIP_MAGICS):
        raise DataError(display, "not a .npz archive (it does not start with the zip magic bytes)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) != 1:
                names = [_member_name(info) for info in infos]
                found = "no arrays" if not names else f"{len(names)} arrays: {', '.join(names)}"
                raise DataError(display, f"expected exactly one array in the .npz, found {found}")
            member = _member_name(infos[0])
            _check_size(display, infos[0].file_size, limits, what=f"array '{member}' (decompressed)")
            with archive.open(infos[0]) as f:
                raw = f.read(limits.max_bytes + 1)
    except DataError:
        raise
    except Exception as exc:  # zipfile raises many undocumented types (struct, zlib, EOF...) on bad input
        raise DataError(display, f"corrupt .npz archive ({type(exc).__name__}: {exc})") from None
    _check_size(display, len(raw), limits, what=f"array '{member}' (decompressed)")
    return _parse_npy(raw, display, limits, member=member)


def _member_name(info: zipfile.ZipInfo) -> str:
    """The key numpy gives a .npz member: its file name without '.npy'."""
    return info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename


# --- text tables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    """How a text table splits into cells: a delimiter (None: runs of whitespace), maybe quoted cells.

    Rows are split in bulk (join, then one split) because a Python list per row makes a 1e6-row file
    several times slower (the garbage collector keeps scanning the live lists).
    """

    delimiter: str | None
    quoted: bool

    def split(self, row: str) -> list[str]:
        """The cells of one row."""
        cells = row.split(self.delimiter)
        return [_unquote(cell) for cell in cells] if self.quoted else cells

    def widths(self, rows: list[str]) -> np.ndarray:
        """The number of cells of every row, counted without building a list of them."""
        if self.delimiter is None:
            return np.fromiter(map(_count_fields, rows), dtype=np.intp, count=len(rows))
        counts = map(operator.methodcaller("count", self.delimiter), rows)
        return np.fromiter(counts, dtype=np.intp, count=len(rows)) + 1

    def cells(self, rows: list[str]) -> list[str]:
        """The cells of all rows, row after row."""
        joiner = " " if self.delimiter is None else self.delimiter
        cells = joiner.join(rows).split(self.delimiter)
        return list(map(_unquote, cells)) if self.quoted else cells


@dataclass(frozen=True)
class _Rows:
    """The data rows of a text table (stripped lines) with their 1-based line numbers in the file."""

    numbers: list[int]
    lines: list[str]


def _parse_text(data: bytes, display: str, limits: Limits) -> _Parsed:
    """Read a delimited text table: sniff the delimiter, detect a header, convert in chunks of rows."""
    text = _decode(data, display)
    rows = _content_rows(text, display, limits)
    if not rows.lines:
        raise DataError(display, "no data: the file has only blank or comment ('#') lines")
    dialect = _Dialect(_sniff_delimiter(rows.lines[:_SNIFF_LINES]), quoted='"' in text)
    _check_columns(display, int(dialect.widths(rows.lines[:1])[0]), limits)
    first_no, first = rows.numbers[0], dialect.split(rows.lines[0])
    header = not any(_is_number(cell) for cell in first)
    names = _header_names(first) if header else None
    skip = 1 if header else 0
    body = _Rows(rows.numbers[skip:], rows.lines[skip:])
    if not body.lines:
        raise DataError(display, f"only a header row (line {first_no}), no data rows")
    _check_rows(display, len(body.lines), limits)
    table = _TextTable(display, dialect, len(first), first_no, names)
    step = max(1, _CHUNK_CELLS // len(first))
    blocks = [
        table.convert(_Rows(body.numbers[k : k + step], body.lines[k : k + step]))
        for k in range(0, len(body.lines), step)
    ]
    return _Parsed(np.concatenate(blocks), names or _generated_columns(len(first)), table.locator(body.numbers))


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


def _content_rows(text: str, display: str, limits: Limits) -> _Rows:
    """The lines that are neither blank nor '#' comments, read a block at a time so that a file of
    many short lines is refused for its row count before all of it is held as Python strings."""
    rows = _Rows([], [])
    first = 1
    for block in _text_blocks(text, _BLOCK_CHARS):
        stripped = list(map(str.strip, block.split("\n")))
        keep = [k for k, line in enumerate(stripped) if line and line[0] != "#"]
        rows.numbers.extend(first + k for k in keep)
        rows.lines.extend(stripped[k] for k in keep)
        first += len(stripped) - 1
        _check_rows(display, len(rows.lines) - 1, limits, counted_so_far=True)  # - 1: maybe a header
    return rows


def _text_blocks(text: str, size: int) -> Iterator[str]:
    """Consecutive pieces of about `size` characters that end with a newline (the last one may not)."""
    start = 0
    while start < len(text):
        newline = text.find("\n", start + size)
        end = len(text) if newline < 0 else newline + 1
        yield text[start:end]
        start = end


def _sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter of a sample of lines: tab, ';' or ',' (None: runs of whitespace).

    Preferred: the first candidate found the same, non-zero, number of times on every line; else the one
    found on most lines, if that is more than half of them (so that a ragged file is reported as ragged);
    else whitespace (a stray tab in a space-separated file does not make it tab-separated).
    """
    for delimiter in _DELIMITERS:
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and 0 not in counts:
            return delimiter
    found = {d: sum(d in line for line in lines) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=found.__getitem__)  # the first of equals, as max keeps the first
    return best if 2 * found[best] > len(lines) else None


def _count_fields(row: str) -> int:
    """len(row.split()), without the list for a long row (millions of cells would take gigabytes)."""
    return len(row.split()) if len(row) <= _LONG_ROW else sum(1 for _ in _FIELD.finditer(row))


def _unquote(cell: str) -> str:
    """A cell without surrounding whitespace and one pair of surrounding double quotes."""
    cell = cell.strip()
    return cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == '"' else cell


def _is_number(cell: str) -> bool:
    """Whether Python's float() (the parser used for every cell) accepts the cell."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _header_names(cells: list[str]) -> tuple[str, ...]:
    """Unique column names from a header row: a blank name becomes x<j>, a repeated one gets .1, .2, ..."""
    names: list[str] = []
    for j, cell in enumerate(cells):
        name = base = _unquote(cell) or f"x{j}"
        copy = 0
        while name in names:
            copy += 1
            name = f"{base}.{copy}"
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class _TextTable:
    """What converting the rows of one text table needs to know, to convert them and to name a cell."""

    display: str
    dialect: _Dialect
    width: int
    first_no: int
    names: tuple[str, ...] | None

    def place(self, line: int, j: int) -> str:
        """'line 3, column 2', with the column's header name if there is one."""
        return f"line {line}, column {j + 1}" + (f" ({self.names[j]!r})" if self.names else "")

    def locator(self, numbers: list[int]) -> Callable[[int, int], str]:
        """Maps (data row, column) of the converted array to its place in the file."""
        return lambda i, j: self.place(numbers[i], j)

    def convert(self, rows: _Rows) -> np.ndarray:
        """Cells to float64 [len(rows), width]; DataError at the first ragged row or non-numeric cell.

        The fast path converts all cells at once; only when that fails are the cells searched, so that the
        message can name the first bad one. A ragged row is reported after the rows above it are checked.
        """
        widths = self.dialect.widths(rows.lines)
        ragged = np.flatnonzero(widths != self.width)
        if ragged.size:
            k = int(ragged[0])
            self.convert(_Rows(rows.numbers[:k], rows.lines[:k]))
            expected = f"expected {self.width} fields (as on line {self.first_no}), found {widths[k]}"
            raise DataError(self.display, f"line {rows.numbers[k]}: {expected}")
        cells = self.dialect.cells(rows.lines) if rows.lines else []
        try:
            values = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
        except ValueError:
            bad = next((k for k, cell in enumerate(cells) if not _is_number(cell)), None)
            if bad is None:  # cannot happen: float() is the test; fail loudly rather than blame a cell
                raise
            i, j = divmod(bad, self.width)
            raise DataError(
                self.display, f"{self.place(rows.numbers[i], j)}: {_describe_bad_cell(cells[bad])}"
            ) from None
        return values.reshape(len(rows.lines), self.width)


def _describe_bad_cell(cell: str) -> str:
    """What was expected and found in a cell that is not a number, with a hint for decimal commas."""
    shown = cell.strip()
    if not shown:
        return "empty cell; expected a number"
    shown = repr(shown if len(shown) <= 40 else shown[:37] + "...")
    hint = "; decimal commas are not supported, use '.'" if _is_number(cell.replace(",", ".")) else ""
    return f"expected a number, found {shown}{hint}"
