"""Label columns: text or numbers become classes; each bad column gets a message naming file and column."""

from __future__ import annotations

import numpy as np
import pytest

from flowscope.data.labels import LabelError, encode_labels


def test_text_and_numeric_labels() -> None:
    labels = encode_labels(["b", "a", "b", "a", " c", "c"], file="f.csv", column="kind")
    assert labels.names == ("b", "a", "c") and labels.indices.tolist() == [0, 1, 0, 1, 2, 2]
    numbers = encode_labels(np.array([1.0, 2.0, 1.0, 2.0]), file="f.csv", column="3")
    assert numbers.names == ("1", "2")


@pytest.mark.parametrize("cells,message", [
    (["a", "a", "b"], r"class\(es\) 'b' have fewer than 2 points"),
    ([str(i) for i in range(300)] * 2, "300 classes, over the limit of 256"),
    (["a", "", "b", "a", "b"], r"1 empty label cell\(s\) \(line 3\)"),
    (["a", "a", "a"], "only one class"),
])
def test_bad_label_columns_are_named(cells: list[str], message: str) -> None:
    with pytest.raises(LabelError, match=message) as err:
        encode_labels(cells, file="data.csv", column="species", lines=list(range(2, 2 + len(cells))))
    assert str(err.value).startswith("data.csv: label column 'species'")
