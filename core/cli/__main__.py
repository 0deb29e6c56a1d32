"""`python -m flowscope.cli`: the command line."""

import sys

from .commands import main

sys.exit(main())

__all__: list[str] = []
