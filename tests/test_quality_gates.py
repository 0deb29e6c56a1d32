"""No unpickling anywhere, and the README's static checks and test command are the ones CI runs (mypy, ruff and
import-linter are steps of .ci/run, not tests)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_is_ever_unpickled() -> None:
    """No torch.load, no pickle, no allow_pickle=True in the code base (tests excepted for this file)."""
    forbidden = re.compile(r"torch\.load\(|allow_pickle\s*=\s*True|import pickle|pickle\.loads?\(")
    offenders = []
    for folder in ("core", "ui", "bench", "pretrained"):
        for file in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(file.read_text().splitlines(), 1):
                if forbidden.search(line):
                    offenders.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^(python3 -m pip install -q -e \"\.\[dev\]\" && python3 -m pytest -q)", readme, re.M)
    assert match, "README's quick start has no test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert match.group(1) in ci
    checks = re.search(r"^(ruff check .*lint-imports)", readme, re.M)
    assert checks, "README names no static checks"
    assert checks.group(1) in ci
