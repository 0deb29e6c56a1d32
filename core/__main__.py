"""`python -m flowscope ...`: the `flowscope` command, also as `torchrun --nproc_per_node N -m flowscope train ...`."""

from __future__ import annotations

import sys

from .cli.commands import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
