"""flowscope: see, train and reuse flow matching models (Lipman et al., ICLR 2023).

The public names below load their module on first use (PEP 562), so `import flowscope.files` or
`flowscope.manifest` does not import torch; `from flowscope import train` works as usual.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("flowscope")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "pair": "couplings",
    "FlowModel": "flow",
    "resolve_device": "flow",
    "MLPConfig": "models",
    "Normalizer": "models",
    "VelocityMLP": "models",
    "AffinePath": "paths",
    "CosinePath": "paths",
    "OTPath": "paths",
    "PathSample": "paths",
    "VEPath": "paths",
    "VPPath": "paths",
    "make_path": "paths",
    "SampleResult": "sampling",
    "SolverConfig": "sampling",
    "Velocity": "sampling",
    "integrate": "sampling",
    "StepInfo": "training",
    "TrainConfig": "training",
    "TrainingDiverged": "training",
    "TrainResult": "training",
    "cfm_loss": "training",
    "train": "training",
    "evaluate": "evaluation",
    "FieldSupport": "fieldview",
    "FieldView": "fieldview",
    "field_support": "fieldview",
    "fields_at": "fieldview",
}

__all__ = [
    "AffinePath",
    "CosinePath",
    "FieldSupport",
    "FieldView",
    "FlowModel",
    "MLPConfig",
    "Normalizer",
    "OTPath",
    "PathSample",
    "SampleResult",
    "SolverConfig",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "VEPath",
    "VPPath",
    "Velocity",
    "VelocityMLP",
    "__version__",
    "cfm_loss",
    "evaluate",
    "field_support",
    "fields_at",
    "integrate",
    "make_path",
    "pair",
    "resolve_device",
    "train",
]


def __getattr__(name: str) -> Any:
    """Load a public name's module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .couplings import pair
    from .evaluation import evaluate
    from .fieldview import FieldSupport, FieldView, field_support, fields_at
    from .flow import FlowModel, resolve_device
    from .models import MLPConfig, Normalizer, VelocityMLP
    from .paths import AffinePath, CosinePath, OTPath, PathSample, VEPath, VPPath, make_path
    from .sampling import SampleResult, SolverConfig, Velocity, integrate
    from .training import StepInfo, TrainConfig, TrainingDiverged, TrainResult, cfm_loss, train
