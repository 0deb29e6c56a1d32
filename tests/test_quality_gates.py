"""No unpickling anywhere, and the README's static checks and test command are the ones CI runs (mypy, ruff and
import-linter are steps of .ci/run, not tests)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

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


#: The installed distribution of each module that the core imports by another name.
DISTRIBUTIONS = {"PIL": "pillow", "ot": "pot", "flowscope_pretrained": "flowscope"}


def test_the_core_imports_only_its_declared_dependencies() -> None:
    """A core-only install (`pip install flowscope`) must not end in an ImportError traceback: every third-party
    module the core imports outside a `try: ... except ImportError` (an extra's, named by its message) is one of
    [project].dependencies (Pillow was not, though the image loader and `sample --out grid.png` need it)."""
    import ast

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = {re.split(r"[<>=\[ ;]", d)[0].lower()
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    undeclared = set()
    for file in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(file.read_text())
        guarded = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
                   and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in t.handlers)
                   for stmt in t.body for node in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in guarded \
                    and not (isinstance(node, ast.ImportFrom) and node.level):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"__future__"}:
                    if DISTRIBUTIONS.get(top, top).lower() not in declared | {"flowscope"}:
                        undeclared.add(f"{file.relative_to(ROOT)}: {top}")
    assert not undeclared, sorted(undeclared)
