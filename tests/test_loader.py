"""Tests of flowscope.loader: the bad-file corpus, the formats it accepts, fuzzing and round trips."""

from __future__ import annotations

import io
import pickle
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from corpus_cases import CASES, CORPUS_DIR, CORPUS_LIMITS, GOOD_FILES, STATIC_CASES, Case, materialize_corpus
from flowscope.data.loader import (
    SUPPORTED_SUFFIXES,
    DataError,
    DroppedColumn,
    Limits,
    Table,
    generated_columns,
    load_array,
    load_bytes,
    load_table,
    load_table_bytes,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` in .npy format."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """`arrays` in .npz format."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def refused(data: bytes, name: str, limits: Limits = CORPUS_LIMITS) -> str:
    """The message of the DataError that loading `data` as `name` must raise."""
    with pytest.raises(DataError) as info:
        load_bytes(data, name, limits=limits)
    return str(info.value)


# --- the corpus -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every bad case, written once for the module, by file name."""
    return {case.path.name: case for case in materialize_corpus(tmp_path_factory.mktemp("corpus"))}


@pytest.mark.parametrize("filename", [name for name, _ in CASES])
def test_corpus_case_is_refused_from_disk(corpus: dict[str, Case], filename: str) -> None:
    case = corpus[filename]
    with pytest.raises(DataError) as info:
        load_array(case.path, limits=CORPUS_LIMITS)
    assert case.expected in str(info.value)
    assert filename in str(info.value)


@pytest.mark.parametrize("filename", [name for name, _ in CASES])
def test_corpus_case_is_refused_from_memory(corpus: dict[str, Case], filename: str) -> None:
    case = corpus[filename]
    if not case.path.is_file():
        pytest.skip("no content to upload")
    with pytest.raises(DataError) as info:
        load_bytes(case.path.read_bytes(), filename, limits=CORPUS_LIMITS)
    assert case.expected in str(info.value)
    assert str(info.value).startswith(f"{filename}: ")


def test_corpus_readme_matches_corpus_cases() -> None:
    readme = (CORPUS_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+) \| .* \| `(.*)` \|$", readme, flags=re.MULTILINE)
    assert [(name, fragment.replace("\\|", "|")) for name, fragment in rows] == CASES


def test_static_corpus_files_are_small_and_present() -> None:
    for name, _ in STATIC_CASES:
        assert (CORPUS_DIR / name).stat().st_size < 4096, name


def test_corpus_with_default_limits(tmp_path: Path) -> None:
    """The generated cases can be sized for the default limits too (for callers that cannot set them)."""
    for case in materialize_corpus(tmp_path, Limits()):
        with pytest.raises(DataError, match=re.escape(case.expected)):
            load_table(case.path)


@pytest.mark.parametrize("filename, shape, columns", GOOD_FILES)
def test_good_files_load(filename: str, shape: tuple[int, int], columns: tuple[str, ...]) -> None:
    table = load_table(CORPUS_DIR / filename)
    assert table.values.shape == shape
    assert table.values.dtype == np.float32
    assert table.values.flags.c_contiguous
    assert table.columns == columns
    from_memory = load_table_bytes((CORPUS_DIR / filename).read_bytes(), filename)
    np.testing.assert_array_equal(from_memory.values, table.values)
    assert from_memory.columns == columns


# --- API details ----------------------------------------------------------------------------------------


def test_display_name_and_format_come_from_name(tmp_path: Path) -> None:
    upload = tmp_path / "upload-1234"  # a temporary file without an extension
    upload.write_bytes(b"x,y\n1,2\n3,abc\n")
    with pytest.raises(DataError, match=r"^my data\.csv: line 3, column 2"):
        load_array(upload, name="my data.csv")


def test_path_message_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(b"1,2\n")
    with pytest.raises(DataError) as info:
        load_array(path)
    assert info.value.file == str(path)
    assert str(info.value) == f"{path}: {info.value.problem}"


def test_size_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"1,2\n3,4\n")
    with pytest.raises(DataError, match=r"is 0\.00 MB \(8 bytes\), over the size limit of 0\.00 MB \(7 bytes\)"):
        load_array(path, limits=Limits(max_bytes=7))


def test_data_error_is_a_value_error_and_pickles() -> None:
    error = DataError("a.csv", "too few rows")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.problem, str(copy)) == ("a.csv", "too few rows", "a.csv: too few rows")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        Limits(max_rows=0)


def test_unsupported_or_missing_extension() -> None:
    assert "unsupported file type (no extension)" in refused(b"1,2\n3,4\n", "points")
    assert "expected one of .csv, .tsv, .txt, .npy, .npz" in refused(b"", "points.json")


def test_extension_is_case_insensitive() -> None:
    assert load_bytes(b"1,2\n3,4\n", "POINTS.CSV").shape == (2, 2)


# --- text tables ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1,2\n3,4", [[1, 2], [3, 4]]),  # no final newline
        ("1;2\n3;4\n", [[1, 2], [3, 4]]),
        ("1\t2\n3\t4\n", [[1, 2], [3, 4]]),
        ("  1   2\n3 4  \n", [[1, 2], [3, 4]]),
        ("1, 2\r\n3 ,4\r\n", [[1, 2], [3, 4]]),  # CRLF, spaces around cells
        ("1,2\r3,4\r", [[1, 2], [3, 4]]),  # old Mac line ends
        ("\ufeffx,y\n1,2\n3,4\n", [[1, 2], [3, 4]]),  # byte order mark
        ("# comment\n\n1 2\n\n# another\n3 4\n", [[1, 2], [3, 4]]),
        ('"1","2"\n"3","4"\n', [[1, 2], [3, 4]]),
        ("1e3,-2.5E-1\n+3,1_000\n", [[1000, -0.25], [3, 1000]]),
        ("1\n2\n3\n", [[1], [2], [3]]),
        ("True,1\n0,1\n", None),  # not numbers: refused below
    ],
)
def test_text_dialects(text: str, expected: list[list[float]] | None) -> None:
    if expected is None:
        assert "expected a number, found 'True'" in refused(text.encode(), "t.csv")
    else:
        np.testing.assert_array_equal(load_bytes(text.encode(), "t.csv"), np.array(expected, np.float32))


@pytest.mark.parametrize(
    "text, columns",
    [
        ("x,y\n1,2\n3,4\n", ("x", "y")),
        ('"x","y"\n1,2\n3,4\n', ("x", "y")),
        ("x,\n1,2\n3,4\n", ("x", "y")),  # a blank name gets its position's generated one
        ("x,x,y,x\n1,2,3,4\n5,6,7,8\n", ("x", "x.1", "y", "x.2")),  # names are made unique
        ("nan,inf\n1,2\n3,4\n", None),  # numbers (though not finite): data, not a header
    ],
)
def test_header_detection(text: str, columns: tuple[str, ...] | None) -> None:
    if columns is None:
        assert "line 1, column 1: found NaN" in refused(text.encode(), "h.csv")
    else:
        assert load_table_bytes(text.encode(), "h.csv").columns == columns


def test_first_row_with_some_text_is_data_not_header() -> None:
    assert "line 1, column 2: expected a number, found 'b'" in refused(b"1,b\n2,3\n4,5\n", "h.csv")


def test_earliest_error_wins_between_text_and_ragged_rows() -> None:
    assert "line 2, column 1" in refused(b"1,2\nabc,3\n4,5,6\n", "e.csv")
    assert "line 2: expected 2 fields" in refused(b"1,2\n4,5,6\nabc,3\n", "e.csv")


def test_stray_tab_in_space_separated_file() -> None:
    assert load_bytes(b"1 2\n3 4\n5\t6\n", "w.txt").shape == (3, 2)


def test_ragged_row_missing_a_delimiter_is_reported_as_ragged() -> None:
    assert "line 3: expected 2 fields (as on line 1), found 1" in refused(b"x,y\n1,2\n3\n4,5\n", "r.csv")


def test_errors_in_later_chunks_name_the_right_line() -> None:
    lines = [f"{i},{i + 1}" for i in range(300_000)]  # more rows than one chunk converts at a time
    lines[280_000] = "1,oops"
    text = "x,y\n" + "\n".join(lines)
    assert "line 280002, column 2 ('y'): expected a number, found 'oops'" in refused(text.encode(), "c.csv", Limits())


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"0.5 " * 300_000, "too many columns: 300,000"),
        (b"1 2\n3 4\n" + b"0.5 " * 300_000, "line 3: expected 2 fields (as on line 1), found 300000"),
        (b'"0.5",' * 300_000, "too many columns: 300,001"),  # csv.reader would make 300,000 strings of it
    ],
    ids=["one line", "a long third line", "quoted cells"],
)
def test_a_huge_row_is_counted_not_split(data: bytes, fragment: str) -> None:
    """A one-line hostile file must not become millions of Python strings (splitting this one: 18 MB)."""
    tracemalloc.start()
    try:
        assert fragment in refused(data, "wide.txt", Limits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MB"


def test_long_bad_cell_is_shortened() -> None:
    message = refused(b"1,2\n3," + b"z" * 500 + b"\n", "l.csv")
    assert "found 'zzzzz" in message and "...'" in message and len(message) < 200


def test_million_rows_load_exactly() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1_000_000, 2)).astype(np.float32)
    text = "x,y\n" + "\n".join(map("{:.7g},{:.7g}".format, x[:, 0].tolist(), x[:, 1].tolist())) + "\n"
    y = load_bytes(text.encode(), "big.csv")  # about 1 s on an idle laptop core (a speed for bench/, not a test)
    np.testing.assert_allclose(y, x, rtol=1e-6)


# --- text columns ---------------------------------------------------------------------------------------

IRIS_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def test_iris_like_file_leaves_out_its_species_column() -> None:
    """Header, four numeric columns, a text `species` column, CRLF: loads as 4 columns, species kept as labels."""
    path = CORPUS_DIR / "iris_text.csv"
    assert b"\r\n" in path.read_bytes()
    for table in (load_table(path), load_table_bytes(path.read_bytes(), "iris_text.csv")):
        assert table.values.shape == (6, 4) and table.columns == IRIS_COLUMNS and table.header
        np.testing.assert_array_equal(table.values[0], np.array([5.1, 3.5, 1.4, 0.2], np.float32))
        assert table.dropped == (
            DroppedColumn("species", 4, "not numeric: 'setosa', 'versicolor', 'virginica'; 3 distinct values"),
        )
        assert table.text == {"species": ("setosa",) * 2 + ("versicolor",) * 2 + ("virginica",) * 2}


def test_id_and_date_columns_are_left_out() -> None:
    data = b"id,date,x,y\na17,2020-01-03,1,2\nb2,,3,4.5\na19,2020-01-05,5,6\na20, 2020-01-06 ,7,8\n"
    table = load_table_bytes(data, "ids.csv")
    assert table.columns == ("x", "y") and table.values.tolist() == [[1, 2], [3, 4.5], [5, 6], [7, 8]]
    assert [(d.name, d.index) for d in table.dropped] == [("id", 0), ("date", 1)]
    assert table.dropped[0].reason == "not numeric: 'a17', 'b2', 'a19', ...; 4 distinct values"
    assert table.dropped[1].reason == "not numeric: '2020-01-03', '2020-01-05', '2020-01-06'; 3 distinct values, " \
                                      "1 empty cell"
    assert table.text == {"id": ("a17", "b2", "a19", "a20"), "date": ("2020-01-03", "", "2020-01-05", "2020-01-06")}


def test_without_a_header_columns_are_named_by_their_place_in_the_file() -> None:
    """`5.1,3.5,setosa` has numbers: a data row, not a header; names c<j> keep the file's positions."""
    table = load_table_bytes(b"5.1,setosa,3.5\n4.9,versicolor,3.0\n", "iris.csv")
    assert table.columns == ("c1", "c3") and not table.header
    assert table.dropped[0].name == "c2" and table.text == {"c2": ("setosa", "versicolor")}


def test_unnamed_columns_are_x_and_y_or_c1_to_cd_never_noise_and_data_names() -> None:
    """x0, x1 mean noise and data in flow matching: a .npy's columns are x, y (two) or c1..cD."""
    assert generated_columns(2) == ("x", "y") and generated_columns(4) == ("c1", "c2", "c3", "c4")
    assert load_table_bytes(npy_bytes(np.arange(6.0).reshape(3, 2)), "p.npy").columns == ("x", "y")


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"x,y,label\n0.5,1.5,a\n2.0,abc,b\n3.0,4.0,c\n", "line 3, column 2 ('y'): expected a number, found 'abc'"),
        (b"x,y,label\n0.5,1.5,a\n2.0,,b\n3.0,4.0,c\n", "line 3, column 2 ('y'): empty cell; expected a number"),
        (b"x,y\nabc,1\n2,3\n4,5\n", "line 2, column 1 ('x'): expected a number, found 'abc'"),  # word first
        (b'x,y\n"1,5",a\n"2,5",b\n', "line 2, column 1 ('x'): expected a number, found '1,5'; use '.' for decimals"),
        (b"id,x\na1,1\n\na2,2\n3,4\na5,5\n", "line 5, column 1 ('id'): expected text, as in the rest of this "
                                            "column ('a1' on line 2), found the number '3'"),
    ],
    ids=["stray word", "empty cell", "word before the numbers", "decimal commas are not text", "stray number"],
)
def test_a_column_with_numbers_and_text_is_refused_with_its_place(data: bytes, fragment: str) -> None:
    assert fragment in refused(data, "m.csv")


def test_only_text_columns_are_refused_by_name() -> None:
    message = refused(b"name\nAlice\nBob\n", "t.csv")
    assert message == "t.csv: no numeric columns: every column is text: 'name' (not numeric: 'Alice', 'Bob'; " \
                      "2 distinct values)"


def test_empty_columns_and_nan_among_words_are_text() -> None:
    table = load_table_bytes(b"x,name,y,\n1,Nan,2,\n3,Bob,4,\n", "e.csv")  # a trailing ',' on every line
    assert table.columns == ("x", "y")
    assert [(d.name, d.reason) for d in table.dropped] == [
        ("name", "not numeric: 'Nan', 'Bob'; 2 distinct values"),
        ("c4", "empty: no cell has a value"),  # a blank header name: its position's generated name
    ]
    assert table.text["c4"] == ("", "")
    assert "line 2, column 1 ('x'): found NaN" in refused(b"x,y\nnan,1\nnan,2\n", "n.csv")  # numbers, not finite


def test_text_columns_in_semicolon_files_with_decimal_commas() -> None:
    table = load_table_bytes("x;label;y\r\n1,5;été;2\r\n2,5;hiver;3,25\r\n".encode(), "d.csv")
    assert table.values.tolist() == [[1.5, 2], [2.5, 3.25]] and table.text == {"label": ("été", "hiver")}


def test_constant_numeric_columns_are_kept() -> None:
    """The model keeps constant columns as constants; only data whose points are all identical is refused."""
    table = load_table_bytes(b"x,c,label\n1,7,a\n2,7,b\n3,7,c\n", "c.csv")
    assert table.values[:, 1].tolist() == [7, 7, 7]
    assert "all 2 points are identical" in refused(b"x,label\n1,a\n1,b\n", "c.csv")


def test_text_columns_over_many_chunks() -> None:
    """Labels of a long file stay in row order; a number deep in a text column is found in its chunk."""
    rows = 300_000  # more rows than one chunk converts at a time
    labels = [f"id{i % 7}" for i in range(rows)]
    text = "x,label,date\n" + "".join(f"{i},{label},2021-03-04\n" for i, label in enumerate(labels))
    table = load_table_bytes(text.encode(), "long.csv", limits=Limits())
    assert table.values.shape == (rows, 1) and table.text["label"] == tuple(labels)
    assert table.dropped[1].reason == "not numeric: '2021-03-04'; 1 distinct value"
    bad = text.replace("\n280000,id0,", "\n280000,5,")
    assert "line 280002, column 2 ('label'): expected text, as in the rest of this column ('id0' on line 2), " \
           "found the number '5'" in refused(bad.encode(), "long.csv", Limits())


def test_arrays_have_no_text_columns() -> None:
    table = load_table_bytes(npy_bytes(np.arange(6.0).reshape(3, 2)), "a.npy")
    assert table.dropped == () and table.text == {} and not table.header


# --- CSV quoting, spreadsheet files, decimal commas ----------------------------------------------------


def loaded(data: bytes, name: str = "t.csv") -> tuple[list[list[float]], tuple[str, ...]]:
    """The values (as float64 lists) and column names that `data` loads as."""
    table = load_table_bytes(data, name)
    return table.values.astype(np.float64).tolist(), table.columns


@pytest.mark.parametrize(
    "data, values, columns",
    [
        (b'"income, USD",food\n1,2\n3,4\n', [[1, 2], [3, 4]], ("income, USD", "food")),
        (b'"1.5","2"\n"3","4"\n', [[1.5, 2], [3, 4]], ("x", "y")),
        (b"x,y\r\n1.5,2\r\n3,4\r\n", [[1.5, 2], [3, 4]], ("x", "y")),
        (b"\xef\xbb\xbfx,y\n1,2\n3,4\n", [[1, 2], [3, 4]], ("x", "y")),
        # Excel's "CSV UTF-8": a byte order mark, CRLF, quoted header names
        (b'\xef\xbb\xbf"income, USD","kg"\r\n1.5,2\r\n3,4.25\r\n', [[1.5, 2], [3, 4.25]], ("income, USD", "kg")),
        (b'"say ""hi""",y\n1,2\n3,4\n', [[1, 2], [3, 4]], ('say "hi"', "y")),  # a doubled quote
        (b'"a";"b;c"\n1;2\n3;4\n', [[1, 2], [3, 4]], ("a", "b;c")),
        (b'"a\tb"\tc\n1\t2\n3\t4\n', [[1, 2], [3, 4]], ("a\tb", "c")),
        (b'x, "y"\n1, "2"\n3 , 4\n', [[1, 2], [3, 4]], ("x", "y")),  # spaces around quoted cells
        (b'"x 1"  "y 2"\n1 2\n3\t4\n', [[1, 2], [3, 4]], ("x 1", "y 2")),  # quoted names, whitespace-separated
        (b'"x\nin m",y\n1,2\n3,4\n', [[1, 2], [3, 4]], ("x in m", "y")),  # a header cell over two lines
        (b'"a,b"\n1\n2\n', [[1], [2]], ("a,b",)),  # one column, its name holds a comma
    ],
    ids=[
        "quoted delimiter in header",
        "quoted numbers",
        "CRLF",
        "BOM",
        "Excel CSV UTF-8",
        "doubled quote",
        "quoted semicolon",
        "quoted tab",
        "spaces around quotes",
        "whitespace with quoted names",
        "header over two lines",
        "one quoted column",
    ],
)
def test_csv_quoting(data: bytes, values: list[list[float]], columns: tuple[str, ...]) -> None:
    assert loaded(data) == (values, columns)


@pytest.mark.parametrize(
    "data, values",
    [
        (b"x;y\n1,5;2,5\n3,0;4,0\n", [[1.5, 2.5], [3.0, 4.0]]),
        (b"1,5;2,5\n3,0;4,0\n", [[1.5, 2.5], [3.0, 4.0]]),  # no header: ';' still wins over ','
        (b"x\ty\n1,5\t-2,5\n,5\t4\n", [[1.5, -2.5], [0.5, 4.0]]),
        (b'"x";"y"\r\n"1,5";"2,5e3"\r\n3.25;+4,0\r\n', [[1.5, 2500.0], [3.25, 4.0]]),  # quoted; '.' still reads
    ],
    ids=["semicolon", "semicolon, no header", "tab", "quoted, exponent, mixed"],
)
def test_decimal_commas_in_semicolon_and_tab_files(data: bytes, values: list[list[float]]) -> None:
    assert loaded(data)[0] == values


def test_decimal_comma_corpus_file() -> None:
    table = load_table(CORPUS_DIR / "decimal_comma.csv")
    assert table.values.tolist() == [[1.5, 2.5], [3.0, 4.0]] and table.columns == ("x", "y")


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b'x,y\n"1,5","2,5"\n3,4\n', "line 2, column 1 ('x'): expected a number, found '1,5'; use '.' for decimals"),
        (b"x;y\n1,5;2,5\n1.000,5;3\n", "line 3, column 1 ('x'): expected a number, found '1.000,5'"),
        (b"x;y\n1,5;2,5\n1,2,3;3\n", "line 3, column 1 ('x'): expected a number, found '1,2,3'"),
        (b"x;y\n1,5;2,5\n3;5,\n", "line 3, column 2 ('y'): expected a number, found '5,'"),
        (b"x\ty\n1,5\t2,5\n1_0,5\t3\n", "line 3, column 1 ('x'): expected a number, found '1_0,5'"),
        (b"x y\n1,5 2\n3 4\n", "line 2, column 1 ('x'): expected a number, found '1,5'; use '.' for decimals"),
    ],
    ids=["comma file: ambiguous", "thousands mark", "two commas", "no digits after", "underscore", "whitespace"],
)
def test_decimal_commas_refused_where_ambiguous(data: bytes, fragment: str) -> None:
    assert fragment in refused(data, "d.csv")


def test_decimal_comma_first_row_is_data_not_header() -> None:
    assert "line 1, column 2: expected a number, found 'abc'" in refused(b"1,5;abc\n2;3\n4;5\n", "d.csv")


@pytest.mark.parametrize(
    "data, fragment",
    [
        # a quoted cell over two lines: the next rows keep the file's line numbers
        (b'"x\nin m",y\n1,2\n3,abc\n', "line 4, column 2 ('y'): expected a number, found 'abc'"),
        (b'x,y\n1,"2\n"\n3,abc\n', "line 4, column 2 ('y'): expected a number, found 'abc'"),
        # with blank and comment lines between them as well
        (
            b'# units\n\n"x\nin m",y\n\n1,2\n# more\n  \n3,4\n5,6,7\n',
            "line 10: expected 2 fields (as on line 3), found 3",
        ),
        (b'x,y\n1,2\n"3\n4",abc\n', "line 3, column 1 ('x'): expected a number, found '3\\n4'"),
        (b"x,y\n\n\n# c\n1,2\n\n3,abc\n", "line 7, column 2 ('y'): expected a number, found 'abc'"),
    ],
    ids=["header over two lines", "data cell over two lines", "blank and comment lines", "multi-line cell", "gaps"],
)
def test_line_numbers_are_the_files(data: bytes, fragment: str) -> None:
    assert fragment in refused(data, "n.csv")


def test_unclosed_quote_is_named() -> None:
    message = refused(b'x,y\n1,2\n"3,4\n5,6\n', "q.csv")
    assert "line 3: expected 2 fields (as on line 1), found 1" in message
    assert "span lines 3-4: is a closing '\"' missing?" in message
    message = refused(b'x,y\n1,"2\n3,4\n5,6\n', "q.csv")
    assert "line 2, column 2 ('y'): expected a number, found '2\\n3,4\\n5,6'" in message
    assert "is a closing '\"' missing?" in message
    message = refused(b'x,y\n1,2\n3,"4\n' + b"5,6\n" * 40_000, "q.csv", Limits())
    assert "line 3: a cell of the row that starts here is longer than 131,072 characters" in message


def test_ragged_rows_with_quoted_delimiters() -> None:
    assert "line 3: expected 2 fields (as on line 1), found 3" in refused(b'"a,b",c\n1,2\n3,"4,5",6\n', "r.csv")


def test_too_many_rows_keeps_memory_bounded() -> None:
    """A file over the row limit is refused after reading little more than the limit's worth of rows."""
    data = b"0,1\n" * 3_000_000
    tracemalloc.start()
    try:
        assert "too many rows: more than 1,000 data rows" in refused(data, "many.csv", Limits(max_rows=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data) + 4 * 2**20, f"{peak / 2**20:.1f} MB"  # the decoded text, and little else


# --- arrays ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([True, False, True]),
        np.array([[1, 2], [3, 4]], dtype=np.int64),
        np.array([[1, 2], [3, 4]], dtype=np.uint8),
        np.array([[1.5, 2], [3, 4]], dtype=np.float16),
        np.array([[1.5, 2], [3, 4]], dtype=">f8"),  # big-endian
        np.asfortranarray(np.arange(6.0).reshape(3, 2)),
        np.arange(5.0),  # 1-D: one column
    ],
)
def test_numeric_arrays_are_converted(array: np.ndarray) -> None:
    expected = array.reshape(len(array), -1).astype(np.float32)
    np.testing.assert_array_equal(load_bytes(npy_bytes(array), "a.npy"), expected)
    np.testing.assert_array_equal(load_bytes(npz_bytes(only=array), "a.npz"), expected)


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros(()), "shape (); expected a 1-D or 2-D array"),
        (np.zeros((0, 2)), "too few rows: found 0"),
        (np.zeros((3, 0)), "no columns"),
        (np.array([[1, 2], [3, 4]], dtype="datetime64[s]"), "non-numeric dtype datetime64[s]"),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]), "non-numeric dtype"),
        (
            np.array([[1.0, 2.0], [3.0, -np.inf]]),
            "row 2, column 2 (index [1, 1]): found infinite value (-inf)",
        ),
    ],
)
def test_bad_arrays(array: np.ndarray, fragment: str) -> None:
    assert fragment in refused(npy_bytes(array), "a.npy")


def test_object_array_is_never_unpickled(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("the loader unpickled something")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    assert "object dtype" in refused(buffer.getvalue(), "o.npy")
    assert "object dtype" in refused(npz_bytes(o=np.array([None, 1], dtype=object)), "o.npz")


def test_npz_member_that_is_not_npy() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "member 'notes.txt' of the .npz is not a .npy array" in refused(buffer.getvalue(), "z.npz")


def test_npz_not_a_zip() -> None:
    assert "not a .npz archive" in refused(npy_bytes(np.arange(4.0)), "z.npz")


def test_corrupt_npz_member() -> None:
    data = bytearray(npz_bytes(a=np.arange(40.0)))
    data[60:70] = b"x" * 10
    assert "corrupt .npz archive" in refused(bytes(data), "z.npz")


def test_npy_header_with_negative_dimension() -> None:
    data = npy_bytes(np.arange(4.0)).replace(b"(4,)", b"(-4,)")
    assert "corrupt .npy header" in refused(data, "n.npy")


# --- fuzzing --------------------------------------------------------------------------------------------


def check_outcome(data: bytes, name: str) -> None:
    """Loading must either give a usable array or raise DataError naming the file; nothing else."""
    try:
        table = load_table_bytes(data, name, limits=CORPUS_LIMITS)
    except DataError as error:
        assert str(error).startswith(f"{name}: ")
        return
    x = table.values
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] >= 2 and x.shape[1] >= 1
    assert np.isfinite(x).all() and not (x == x[0]).all()
    assert len(table.columns) == x.shape[1]
    names = [*table.columns, *(d.name for d in table.dropped)]
    assert len(set(names)) == len(names) and list(table.text) == [d.name for d in table.dropped]
    assert all(len(cells) == len(x) for cells in table.text.values())


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from(SUPPORTED_SUFFIXES))
def test_fuzz_arbitrary_bytes(data: bytes, suffix: str) -> None:
    check_outcome(data, "fuzz" + suffix)


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from(list('0123456789.,;\t \n\r-+eE_#"xnaif\u00e9\x0c')), max_size=200),
    suffix=st.sampled_from([".csv", ".tsv", ".txt"]),
)
def test_fuzz_table_like_text(text: str, suffix: str) -> None:
    check_outcome(text.encode(), "fuzz" + suffix)


VALID_ARRAYS = [
    npy_bytes(np.arange(12.0).reshape(6, 2)),
    npy_bytes(np.arange(5, dtype=np.int16)),
    npz_bytes(a=np.arange(8.0).reshape(4, 2)),
]


@FUZZ
@given(
    base=st.sampled_from(range(len(VALID_ARRAYS))),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 400),
)
def test_fuzz_mutated_arrays(base: int, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID_ARRAYS[base])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    suffix = ".npz" if data.startswith(b"PK") else ".npy"
    check_outcome(bytes(data[: len(data) - cut]), "fuzz" + suffix)


# --- round trips ----------------------------------------------------------------------------------------

finite_arrays = hnp.arrays(
    dtype=np.float32,
    shape=st.tuples(st.integers(2, 12), st.integers(1, 4)),
    elements=st.floats(-1e6, 1e6, width=32, allow_nan=False, allow_infinity=False),
)


def as_text(x: np.ndarray, delimiter: str, header: bool) -> bytes:
    """`x` as a delimited table; float64 repr of each float32 value, so it reads back exactly."""
    rows = [delimiter.join(repr(float(v)) for v in row) for row in x]
    names = [delimiter.join(f"col{j}" for j in range(x.shape[1]))] if header else []
    return "\n".join(names + rows).encode()


@settings(max_examples=60, deadline=None)
@given(x=finite_arrays, fmt=st.sampled_from(["csv", "csv+header", "tsv", "tsv+header", "txt", "npy", "npz"]))
def test_round_trip(x: np.ndarray, fmt: str) -> None:
    assume(not (x == x[0]).all())
    suffix, _, header = fmt.partition("+")
    if suffix == "npy":
        data = npy_bytes(x)
    elif suffix == "npz":
        data = npz_bytes(points=x)
    else:
        data = as_text(x, {"csv": ",", "tsv": "\t", "txt": " "}[suffix], bool(header))
    table = load_table_bytes(data, "round." + suffix)
    np.testing.assert_allclose(table.values, x, rtol=1e-7, atol=0)
    expected = tuple(f"col{j}" for j in range(x.shape[1])) if header else generated_columns(x.shape[1])
    assert table.columns == expected


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".npz"])
def test_round_trip_through_a_file(tmp_path: Path, suffix: str) -> None:
    x = np.random.default_rng(1).standard_normal((50, 3)).astype(np.float32)
    path = tmp_path / f"points{suffix}"
    if suffix == ".csv":
        np.savetxt(path, x, delimiter=",", header="a,b,c", fmt="%.9g")  # '# a,b,c': a comment line
    elif suffix == ".npy":
        np.save(path, x)
    else:
        np.savez_compressed(path, x=x)
    table = load_table(path)
    np.testing.assert_array_equal(table.values, x)
    assert isinstance(table, Table)
