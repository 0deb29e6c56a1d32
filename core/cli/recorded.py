"""How the CLI prints a model's recorded figures after training: the report's display rows (the table the
explorer shows), then the stored form as JSON lines for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..evaluation.records import ClassesReport, format_rows, stored_report

__all__ = ["print_recorded"]


def print_recorded(info: Mapping[str, Any]) -> None:
    """A model's recorded figures (its `info`): the report's rows, then one JSON line each for the stored
    summary (`metrics`) and the per-class figures (`class_metrics`), so the last line stays machine-readable."""
    report = stored_report(info.get("metrics"))
    classes = ClassesReport.from_dict(info["class_metrics"]) if "class_metrics" in info else None
    rows = (report.rows() if report is not None else []) + (classes.rows() if classes is not None else [])
    if rows:
        print(format_rows(rows))
    for key in ("metrics", "class_metrics"):
        if key in info:
            print(json.dumps(info[key]))
