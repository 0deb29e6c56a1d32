"""argparse types for the CLI's numeric options: a bad value exits with status 2 and argparse's one-line message
naming the option ("argument --steps: must be an integer >= 1, got '0'"), before anything is read or written.

Why: `args.steps or DEFAULT` turned `--steps 0` into the default, and negative, NaN or infinite values reached
the trainer or the solver; every numeric option of every subcommand now says what it takes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["at_least", "finite", "non_negative", "port", "positive", "rate"]


def _number(text: str, kind: type[int] | type[float], expected: str) -> float:
    """`text` as `kind` (int or float), or argparse's error saying what was expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
    return float(value) if kind is float else int(value)


def at_least(low: int) -> Callable[[str], int]:
    """An integer >= `low` (steps, sizes, counts)."""
    def parse(text: str) -> int:
        expected = f"an integer >= {low}"
        value = int(_number(text, int, expected))
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive(text: str) -> float:
    """A finite number > 0 (learning rates, tolerances)."""
    value = _number(text, float, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0 (noise levels)."""
    value = _number(text, float, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def finite(text: str) -> float:
    """Any finite number (guidance scales)."""
    return _number(text, float, "a finite number")


def rate(text: str) -> float:
    """A share in [0, 1) (label dropout: at 1 no point would keep its label)."""
    value = _number(text, float, "a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = int(_number(text, int, "a port number from 1 to 65535"))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return value
