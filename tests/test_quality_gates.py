"""Static checks that run with the tests: type checking (mypy), linting (ruff), no unpickling anywhere,
and the README's test command is the one CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["core", "ui", "bench", "tests"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_passes() -> None:
    result = _run("mypy", "core", "ui")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes() -> None:
    result = _run("ruff", "check", *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


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
    assert match.group(1) in (ROOT / ".ci" / "run").read_text()
