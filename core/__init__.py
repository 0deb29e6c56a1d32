"""flowscope: see, train and reuse flow matching models (Lipman et al., ICLR 2023).

The public names below load their module on first use (PEP 562), so `import flowscope.io.files` or
`flowscope.zoo.manifest` does not import torch; `from flowscope import train` works as usual.
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
    "pair": "maths.couplings",
    "FlowModel": "flow.model",
    "resolve_device": "flow.model",
    "MLPConfig": "nets.models",
    "Normalizer": "maths.normalizer",
    "VelocityMLP": "nets.models",
    "AffinePath": "maths.paths",
    "CosinePath": "maths.paths",
    "OTPath": "maths.paths",
    "PathSample": "maths.paths",
    "VEPath": "maths.paths",
    "VPPath": "maths.paths",
    "make_path": "maths.paths",
    "SampleResult": "solver.sampling",
    "SolverConfig": "solver.sampling",
    "Velocity": "solver.sampling",
    "integrate": "solver.sampling",
    "StepInfo": "training.loop",
    "TrainConfig": "training.loop",
    "TrainingDiverged": "training.loop",
    "TrainResult": "training.loop",
    "cfm_loss": "training.loop",
    "train": "training.loop",
    "evaluate": "evaluation.report",
    "FieldSupport": "fields.fieldview",
    "FieldView": "fields.fieldview",
    "field_support": "fields.fieldview",
    "fields_at": "fields.fieldview",
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


#: Modules the README shows as `from flowscope import NAME` -> where they live in the layers.
_MODULES: dict[str, str] = {
    "checkpoint": "io.checkpoint",
    "fieldview": "fields.fieldview",
    "likelihood": "solver.likelihood",
    "metrics": "evaluation.metrics",
}


def __getattr__(name: str) -> Any:
    """Load a public name's module on first access."""
    if name in _MODULES:
        value: Any = importlib.import_module(f".{_MODULES[name]}", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'flowscope' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_MODULES])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .evaluation.report import evaluate
    from .fields.fieldview import FieldSupport, FieldView, field_support, fields_at
    from .flow.model import FlowModel, resolve_device
    from .maths.couplings import pair
    from .maths.normalizer import Normalizer
    from .maths.paths import AffinePath, CosinePath, OTPath, PathSample, VEPath, VPPath, make_path
    from .nets.models import MLPConfig, VelocityMLP
    from .solver.sampling import SampleResult, SolverConfig, Velocity, integrate
    from .training.loop import StepInfo, TrainConfig, TrainingDiverged, TrainResult, cfm_loss, train
