"""The pretrained zoo's manifest (manifest.json beside the models): its rows, where it lives, how to write it.

Torch-free (standard library only), so the explorer's start page can read it before torch is imported;
`flowscope.zoo` builds and loads the models themselves.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..io.files import write_bytes_atomic

__all__ = ["MANIFEST", "ZOO_DIR_ENV", "ZooEntry", "ZooError", "directory", "entries", "write"]

MANIFEST = "manifest.json"
#: Environment variable naming another folder of pretrained models (tests, a zoo of one's own).
ZOO_DIR_ENV = "FLOWSCOPE_ZOO_DIR"


class ZooError(RuntimeError):
    """A zoo model or manifest that is unknown, missing or corrupt; the message names it and the folder."""


@dataclass(frozen=True)
class ZooEntry:
    """One manifest row: a built model and its recorded quality."""

    name: str
    file: str
    dataset: str
    path: str
    coupling: str
    source: str | None
    params: dict[str, Any]
    steps: int
    train_seconds: float
    metrics: dict[str, float]
    build_seconds: float = 0.0


def directory() -> Path:
    """The folder of the pretrained models: $FLOWSCOPE_ZOO_DIR if set, else the installed package's."""
    override = os.environ.get(ZOO_DIR_ENV)
    if override:
        return Path(override)
    import flowscope_pretrained  # a plain package: no torch

    return Path(flowscope_pretrained.DIRECTORY)


def entries(folder: Path | None = None) -> list[ZooEntry]:
    """The manifest's rows; a missing or unreadable manifest is a ZooError naming the file."""
    manifest = (folder or directory()) / MANIFEST
    try:
        rows = json.loads(manifest.read_text())["models"]
        return [ZooEntry(**row) for row in rows]
    except FileNotFoundError:
        raise ZooError(f"{manifest}: no zoo manifest; build it with `flowscope zoo build`") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ZooError(f"{manifest}: malformed manifest ({err})") from None


def write(folder: Path, rows: list[ZooEntry], solver_for_nfe: dict[str, Any]) -> Path:
    """Write manifest.json atomically: the rows and the solver their NFE was measured with."""
    payload = json.dumps({"format_version": 1, "solver_for_nfe": solver_for_nfe,
                          "models": [asdict(r) for r in rows]}, indent=1)
    return write_bytes_atomic(folder / MANIFEST, payload.encode())
