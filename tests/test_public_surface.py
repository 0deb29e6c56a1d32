"""The public surface: every core module names its public names, each exists and is documented and typed;
tests and benchmarks use public names only; one version string."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from importlib import metadata
from pathlib import Path

import pytest

import flowscope

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name.removeprefix("flowscope.") for m in pkgutil.walk_packages(flowscope.__path__, "flowscope.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_every_core_module_states_its_public_names(name: str) -> None:
    module = importlib.import_module(f"flowscope.{name}")
    assert module.__doc__, f"flowscope.{name} has no docstring"
    public = getattr(module, "__all__", None)
    assert public is not None, f"flowscope.{name} has no __all__"
    for symbol in public:
        value = getattr(module, symbol)  # raises if __all__ names something missing
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            assert value.__doc__, f"flowscope.{name}.{symbol} has no docstring"
            hints = inspect.get_annotations(value)
            assert "return" in hints, f"flowscope.{name}.{symbol} has no return type"


def test_package_exports_resolve_and_version_comes_from_metadata() -> None:
    for symbol in flowscope.__all__:
        assert getattr(flowscope, symbol) is not None
    assert flowscope.__version__ == metadata.version("flowscope")


def test_tests_and_benchmarks_use_public_names() -> None:
    """No `from flowscope... import _private` nor `module._private(` of flowscope's modules outside core."""
    private = re.compile(r"from flowscope[\w.]* import [^#\n]*\b_[a-z]\w*|\bflowscope[\w.]*\._[a-z]\w*")
    offenders = [f"{file.relative_to(ROOT)}:{number}"
                 for folder in ("tests", "bench", "ui") for file in (ROOT / folder).rglob("*.py")
                 if file.name != Path(__file__).name
                 for number, line in enumerate(file.read_text().splitlines(), 1) if private.search(line)]
    assert not offenders, offenders
