"""Defer a heavy import until first use, so that the explorer shows its first plot sooner.

`import flowscope` imports POT (`ot`, with scipy's optimisers) at module level, for W2 and Sinkhorn only;
that is 1-3 s of a cold start on a small machine, before the first page can draw. `defer("ot")` puts a
stand-in module in sys.modules; the first attribute looked up on it (e.g. `ot.emd2`) imports the real module
and makes the stand-in a copy of it. The right fix is a function-level `import ot` in core/metrics.py and
core/couplings.py; then this is a no-op.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_LOCK = threading.Lock()


class _Deferred(types.ModuleType):
    """A module that imports itself for real on the first attribute it does not have."""

    def __getattr__(self, attr: str) -> Any:
        with _LOCK:
            real = sys.modules.get(self.__name__)
            if real is None or real is self:
                sys.modules.pop(self.__name__, None)
                try:
                    real = importlib.import_module(self.__name__)
                except BaseException:
                    sys.modules[self.__name__] = self
                    raise
            self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def defer(name: str) -> None:
    """Stand in for module `name` until it is used; nothing to do when it is imported already or missing."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    module = _Deferred(name)
    module.__spec__ = spec
    module.__file__ = spec.origin
    if spec.submodule_search_locations is not None:
        module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
