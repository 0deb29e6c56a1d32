"""Atomic file writes: a temporary file in the target's folder, flushed, then renamed over the target.

Why: a crash or a full disk mid-write must never leave a half-written model, manifest or sample file under
the real name, nor a stray temporary file. This module imports only the standard library, so torch-free
callers (the explorer's start page) can use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "write_bytes_atomic"]


def write_atomic(target: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, mode: int = 0o644) -> Path:
    """Call `write(handle)` on a temporary file beside `target`, then rename it to `target`.

    The temporary file has a unique name (several writers never collide) and is removed if `write` or the
    rename fails; the target then keeps its previous content. `mode` replaces mkstemp's 0600, since these
    files are meant to be shared.
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(target: str | os.PathLike[str], payload: bytes, *, mode: int = 0o644) -> Path:
    """Write `payload` to `target` atomically (see `write_atomic`)."""
    return write_atomic(target, lambda handle: handle.write(payload), mode=mode)
