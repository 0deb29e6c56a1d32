"""The training rows a model keeps (`flowscope.data.kept`): one seeded, class-stratified sample, whoever trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowscope.cli.commands import main
from flowscope.data.kept import DATA_SAMPLE_ROWS, sample_rows
from flowscope.io import checkpoint


def test_a_class_sorted_table_keeps_every_class_in_proportion() -> None:
    labels = np.repeat([0, 1, 2, 3], [6000, 3000, 900, 100])  # sorted by class: the first rows are all class 0
    index = sample_rows(len(labels), labels)
    kept = np.bincount(labels[index], minlength=4)
    assert len(index) == DATA_SAMPLE_ROWS and kept.tolist() == [1200, 600, 180, 20]
    assert np.array_equal(index, np.sort(index)) and len(set(index.tolist())) == len(index)
    assert np.array_equal(index, sample_rows(len(labels), labels))  # the same rows every time


def test_small_data_are_kept_whole_and_large_data_are_a_random_sample() -> None:
    assert np.array_equal(sample_rows(150), np.arange(150))
    index = sample_rows(50_000)
    assert len(index) == DATA_SAMPLE_ROWS and index.max() > 40_000  # not the first rows


def test_the_cli_keeps_every_class_of_a_class_sorted_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    counts = {"a": 2400, "b": 1200, "c": 400}
    rows = [f"{x:.4f},{y:.4f},{name}" for k, (name, n) in enumerate(counts.items())
            for x, y in rng.normal(4.0 * k, 0.5, (n, 2))]
    data = tmp_path / "sorted.csv"
    data.write_text("\n".join(["x,y,kind", *rows]) + "\n")
    out = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(data), "--labels", "kind", "--steps", "5", "--quiet", "--no-eval",
                 "--out", str(out)]) == 0
    flow = checkpoint.load(out)
    assert flow.data is not None and flow.data_labels is not None and len(flow.data) == DATA_SAMPLE_ROWS
    kept = np.bincount(flow.data_labels.numpy(), minlength=3)
    assert kept.tolist() == [1200, 600, 200]  # each class in proportion (the first 2,000 rows were all 'a')
