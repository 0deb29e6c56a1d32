"""Column and label selection of a table (`flowscope.data.selection`): the CLI's --columns / --labels and the Train
page's choices go through the same rule, and every refusal names the file, what was asked and what there is."""

from __future__ import annotations

import pytest

from flowscope.data.loader import DataError, load_table_bytes
from flowscope.data.selection import columns_for_model, feature_columns, label_column, select

CSV = b"a,kind,b,g\n1,x,2,0\n2,y,3,1\n3,x,5,0\n4,y,4,1\n"


def test_the_cli_spec_and_the_page_choice_select_the_same_columns_and_labels() -> None:
    table = load_table_bytes(CSV, "t.csv")
    by_cli = select(table, "t.csv", "b,0", "1")  # indices: 0 among numeric columns, 1 among all columns (text too)
    by_page = select(table, "t.csv", ["b", "a"], "kind")
    assert by_cli.columns == by_page.columns == ("b", "a") and (by_cli.points == by_page.points).all()
    assert by_cli.labels is not None and by_page.labels is not None
    assert by_cli.labels.names == by_page.labels.names == ("x", "y")
    numeric = select(table, "t.csv", None, "g")  # a numeric label column is never a feature
    assert numeric.columns == ("a", "b") and numeric.label is not None and numeric.label.numeric == 2


@pytest.mark.parametrize(("columns", "labels", "message"), [
    ("a,z", None, "t.csv: --columns names 'z', which is not a column; the numeric columns are 'a', 'b', 'g'"),
    ("kind", None, "t.csv: column 'kind' was left out as text"),
    ("a,0", None, "t.csv: --columns names column 'a' twice"),
    ("a,g", "g", "t.csv: --columns names the label column 'g'; labels are not features"),
    (None, "9", "t.csv: --labels names '9', which is not a column; the columns are 'a', 'kind', 'b', 'g'"),
])
def test_bad_choices_are_refused_by_name(columns: str | None, labels: str | None, message: str) -> None:
    with pytest.raises(DataError) as err:
        select(load_table_bytes(CSV, "t.csv"), "t.csv", columns, labels)
    assert str(err.value).startswith(message)


def test_too_few_columns_besides_the_labels_are_refused() -> None:
    table = load_table_bytes(b"a,g\n1,0\n2,1\n3,0\n", "two.csv")
    label = label_column(table, "g", "two.csv")
    with pytest.raises(DataError, match="two.csv: 'g' is the label column, and the file has only 1 other numeric "
                                        "column: a model needs at least 2"):
        feature_columns(table, None, "two.csv", label, min_columns=2)
    assert feature_columns(table, None, "two.csv", label) == [0]  # one column is enough for the CLI


def test_a_model_reads_its_own_columns_by_name() -> None:
    table = load_table_bytes(CSV, "t.csv")
    assert columns_for_model(table, "t.csv", None, ["b", "a"]).tolist() == [[2, 1], [3, 2], [5, 3], [4, 4]]
