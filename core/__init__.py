"""flowscope: see, train and reuse flow matching models (Lipman et al., ICLR 2023)."""

from .couplings import pair
from .flow import FlowModel, resolve_device
from .models import MLPConfig, Normalizer, VelocityMLP
from .paths import AffinePath, CosinePath, OTPath, PathSample, VEPath, VPPath, make_path
from .sampling import SampleResult, SolverConfig, integrate
from .training import StepInfo, TrainConfig, TrainingDiverged, TrainResult, cfm_loss, train

__version__ = "0.1.0"

__all__ = [
    "AffinePath",
    "CosinePath",
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
    "VelocityMLP",
    "cfm_loss",
    "integrate",
    "make_path",
    "pair",
    "resolve_device",
    "train",
]
