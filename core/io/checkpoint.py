"""Safetensors checkpoints: tensors = the velocity network's state dict (+ source samples), metadata =
a format version and one JSON config. Loading validates all of it and never unpickles anything.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_from_bytes
from safetensors.torch import save as save_tensors_to_bytes

from ..flow.model import FlowModel
from ..maths.couplings import STORED_COUPLINGS
from ..maths.imagespec import ImageSpec
from ..maths.normalizer import Normalizer
from ..maths.paths import make_path
from ..nets.models import MLPConfig, NetConfig, build_net, net_type
from ..nets.unet import UNetConfig
from .files import write_bytes_atomic

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "config_of", "from_bytes", "load", "read_metadata",
           "safetensors_metadata", "save", "to_bytes"]

FORMAT = "flowscope"
FORMAT_VERSION = "1"
SOURCE_KEY = "source"
#: Optional tensor: a sample of the training data (data coordinates), so the explorer can show the model
#: without the dataset it came from.
DATA_KEY = "data"
#: Optional tensor: the class index of each row of DATA_KEY (conditional models).
DATA_LABELS_KEY = "data_labels"
NET_PREFIX = "net."
#: Headers beyond this are refused before parsing (a real flowscope header is a few kB).
MAX_HEADER_BYTES = 1 << 20
#: Files beyond this are refused before reading (the zoo's models are ~100 kB).
MAX_FILE_BYTES = 512 << 20


class CheckpointError(ValueError):
    """A model file that is not a valid flowscope checkpoint; the message names the file and the problem."""


def to_bytes(flow: FlowModel) -> bytes:
    """Serialise a flow to safetensors bytes (for downloads and for `save`)."""
    tensors = {NET_PREFIX + k: v.detach().cpu().contiguous() for k, v in flow.net.state_dict().items()}
    if flow.source is not None:
        tensors[SOURCE_KEY] = flow.source.detach().cpu().float().contiguous()
    if flow.data is not None:
        tensors[DATA_KEY] = flow.data.detach().cpu().float().contiguous()
    if flow.data_labels is not None:
        tensors[DATA_LABELS_KEY] = flow.data_labels.detach().cpu().long().contiguous()
    return save_tensors_to_bytes(tensors, metadata={"format": FORMAT, "format_version": FORMAT_VERSION,
                                                    "config": json.dumps(config_of(flow))})


def config_of(flow: FlowModel) -> dict[str, Any]:
    """The JSON config stored with a flow."""
    return {
        "model": {"type": net_type(flow.net.config), **flow.net.config.to_dict()},
        "path": flow.path.config(),
        "coupling": flow.coupling,
        "normalization": flow.normalizer.to_dict(),
        "source": "samples" if flow.source is not None else "gaussian",
        **({"labels": list(flow.labels)} if flow.labels else {}),
        **({"image": flow.image.to_dict()} if flow.image is not None else {}),
        **flow.info,
    }


def save(flow: FlowModel, path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint atomically (`files.write_bytes_atomic`): never a half-written model file."""
    return write_bytes_atomic(path, to_bytes(flow))


def load(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FlowModel:
    """Read and validate a checkpoint file."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no such model file")
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{file.name}: {size / 2**20:.1f} MB is over the {MAX_FILE_BYTES >> 20} MB limit")
    return from_bytes(file.read_bytes(), file.name, device)


def from_bytes(data: bytes, name: str = "model", device: str | torch.device = "cpu") -> FlowModel:
    """Parse and validate checkpoint bytes (an upload, or a file's content); `name` labels errors."""
    metadata = read_metadata(data, name)
    config = _parse_config(metadata, name)
    try:
        tensors = load_tensors_from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{name}: corrupt tensor data ({err})") from None
    flow = _build(config, tensors, name)
    return flow.to(device)


def read_metadata(data: bytes, name: str = "model") -> dict[str, str]:
    """The safetensors header's metadata, after checking the header's size, JSON and format tag."""
    metadata = safetensors_metadata(data, name)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a flowscope model (no 'format: {FORMAT}' in its metadata)")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{name}: unknown format version {version!r}; this flowscope reads {FORMAT_VERSION!r}")
    return metadata


def safetensors_metadata(data: bytes, name: str) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's header ({} if it has none), read without trusting the header:
    its length is bounded and checked against the file's before the JSON is parsed; CheckpointError otherwise."""
    if len(data) < 8:
        raise CheckpointError(f"{name}: too short to be a safetensors file ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name}: header of {header_len} bytes is over the {MAX_HEADER_BYTES} byte limit")
    if 8 + header_len > len(data):
        raise CheckpointError(f"{name}: truncated file (header says {header_len} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{name}: not a safetensors file (header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _parse_config(metadata: Mapping[str, str], name: str) -> dict[str, Any]:
    """The JSON config, with every field that `_build` relies on checked for presence and type."""
    try:
        config = json.loads(metadata.get("config", ""))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{name}: metadata 'config' is not JSON ({err.msg})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{name}: metadata 'config' must be a JSON object")
    expected: dict[str, type | tuple[type, ...]] = {
        "model": dict, "path": dict, "coupling": str, "normalization": dict, "source": str,
    }
    for key, kind in expected.items():
        _require(config, key, kind, name, "config")
    model = config["model"]
    net_config = _net_config(model, name)
    classes = model.get("num_classes", 0)
    if not isinstance(classes, int) or isinstance(classes, bool):
        raise CheckpointError(f"{name}: config.model.num_classes must be int, got {type(classes).__name__}")
    labels = config.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels) \
            or len(set(labels)) != len(labels):
        raise CheckpointError(f"{name}: config.labels must be a list of distinct non-empty class names")
    if len(labels) != classes:
        raise CheckpointError(f"{name}: config.labels names {len(labels)} classes but the model has {classes}")
    _require(config["path"], "name", str, name, "config.path")
    _normalizer(config["normalization"], net_config.dim, name)
    if "image" in config:
        _image(config["image"], net_config, name)
    elif isinstance(net_config, UNetConfig):
        raise CheckpointError(f"{name}: a U-Net model needs config.image (its shape and pixel range)")
    if config["coupling"] not in STORED_COUPLINGS:
        raise CheckpointError(f"{name}: config.coupling {config['coupling']!r} is not one of {STORED_COUPLINGS}")
    if config["source"] not in ("gaussian", "samples"):
        raise CheckpointError(f"{name}: config.source must be 'gaussian' or 'samples', got {config['source']!r}")
    return config


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], name: str, where: str) -> None:
    """Raise a CheckpointError naming `where.key` unless obj[key] exists with type `kind`."""
    if key not in obj:
        raise CheckpointError(f"{name}: {where} has no field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise CheckpointError(f"{name}: {where}.{key} must be {expected}, got {type(value).__name__}")


def _net_config(model: dict[str, Any], name: str) -> NetConfig:
    """The architecture in config.model ("mlp", the default of files before U-Nets, or "unet"), checked."""
    kind = model.get("type", "mlp")
    fields = {k: v for k, v in model.items() if k != "type"}
    if kind == "mlp":
        for key in ("dim", "width", "depth", "time_features"):
            _require(model, key, int, name, "config.model")
        _require(model, "activation", str, name, "config.model")
        if "fourier_features" in model:
            _require(model, "fourier_features", int, name, "config.model")
            _require(model, "fourier_scale", (int, float), name, "config.model")
        fields.setdefault("fourier_features", 0)  # files written before Fourier features had none
    elif kind == "unet":
        for key in ("channels", "height", "width", "base", "blocks", "groups"):
            _require(model, key, int, name, "config.model")
        _require(model, "multipliers", list, name, "config.model")
        _require(model, "attention", bool, name, "config.model")
        _require(model, "dropout", (int, float), name, "config.model")
        if not all(isinstance(m, int) and not isinstance(m, bool) for m in model["multipliers"]):
            raise CheckpointError(f"{name}: config.model.multipliers must be a list of int")
    else:
        raise CheckpointError(f"{name}: config.model.type {kind!r} is not 'mlp' or 'unet'")
    try:
        return MLPConfig(**fields) if kind == "mlp" else UNetConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{name}: invalid config: {err}") from None


def _image(fields: Any, net_config: NetConfig, name: str) -> ImageSpec:
    """config.image, checked against the network: a U-Net's image shape, or an MLP of as many inputs."""
    if not isinstance(fields, dict):
        raise CheckpointError(f"{name}: config.image must be a JSON object")
    try:
        spec = ImageSpec.from_dict(fields)
    except ValueError as err:
        raise CheckpointError(f"{name}: config.{err}") from None
    if spec.dim != net_config.dim or (isinstance(net_config, UNetConfig) and spec.shape != net_config.shape):
        raise CheckpointError(f"{name}: config.image has shape {spec.shape}, the model's is "
                              f"{getattr(net_config, 'shape', net_config.dim)}")
    return spec


def _build(config: dict[str, Any], tensors: dict[str, torch.Tensor], name: str) -> FlowModel:
    """Rebuild the FlowModel from a validated config and check every tensor's name and shape."""
    path_cfg = {k: v for k, v in config["path"].items() if k != "name"}
    net = build_net(_net_config(config["model"], name))
    try:
        path = make_path(config["path"]["name"], **path_cfg)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{name}: invalid config: {err}") from None
    state = {k[len(NET_PREFIX):]: v for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{name}: tensors do not match the config's model (missing {missing}, "
                              f"unexpected {unexpected})")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise CheckpointError(f"{name}: tensor {key!r} has shape {tuple(state[key].shape)}, "
                                  f"the config's model needs {tuple(tensor.shape)}")
        if not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{name}: tensor {key!r} holds NaN or inf")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net.eval()
    normalizer = _normalizer(config["normalization"], net.config.dim, name)
    source = tensors.get(SOURCE_KEY)
    if config["source"] == "samples":
        if source is None or source.dim() != 2 or source.shape[1] != normalizer.data_dim or len(source) < 1:
            raise CheckpointError(f"{name}: config says source samples are stored, but tensor "
                                  f"{SOURCE_KEY!r} of shape (n, {normalizer.data_dim}) is missing or malformed")
    data = tensors.get(DATA_KEY)
    if data is not None and (data.dim() != 2 or data.shape[1] != normalizer.data_dim or not torch.isfinite(data).all()):
        raise CheckpointError(f"{name}: tensor {DATA_KEY!r} must be finite data of shape (n, {normalizer.data_dim}), "
                              f"got {tuple(data.shape)}")
    labels = tuple(config.get("labels", []))
    data_labels = tensors.get(DATA_LABELS_KEY)
    if data_labels is not None:
        valid = (data is not None and data_labels.dim() == 1 and len(data_labels) == len(data)
                 and not data_labels.dtype.is_floating_point and len(labels) > 0
                 and bool(((data_labels >= 0) & (data_labels < len(labels))).all()))
        if not valid:
            raise CheckpointError(f"{name}: tensor {DATA_LABELS_KEY!r} must hold one class index in "
                                  f"[0, {len(labels)}) per row of {DATA_KEY!r}")
    reserved = {"model", "path", "coupling", "normalization", "source", "labels", "image"}
    info = {k: v for k, v in config.items() if k not in reserved}
    return FlowModel(net=net, path=path, normalizer=normalizer,
                     source=source.float() if config["source"] == "samples" and source is not None else None,
                     coupling=config["coupling"], info=info, data=None if data is None else data.float(),
                     labels=labels, data_labels=None if data_labels is None else data_labels.long(),
                     image=_image(config["image"], net.config, name) if "image" in config else None)


def _normalizer(norm: dict[str, Any], latent_dim: int, name: str) -> Normalizer:
    """The stored normalisation, validated: per-column (or, in files before format 1.1, one) scale."""
    _require(norm, "mean", list, name, "config.normalization")
    _require(norm, "scale", (int, float, list), name, "config.normalization")
    mean, scale, constant = norm["mean"], norm["scale"], norm.get("constant", [])
    if not isinstance(scale, list):
        scale = [scale] * len(mean)  # one scale for every column, as files written before per-column scales
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [*mean, *scale])
    if not numbers or len(scale) != len(mean):
        raise CheckpointError(f"{name}: config.normalization.mean and .scale must be lists of "
                              f"{len(mean)} numbers")
    if not isinstance(constant, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in constant):
        raise CheckpointError(f"{name}: config.normalization.constant must be a list of column indices")
    if len(mean) - len(constant) != latent_dim:
        raise CheckpointError(f"{name}: config.normalization has {len(mean)} columns and {len(constant)} constant "
                              f"ones, but the model is {latent_dim}-dimensional")
    try:
        return Normalizer(mean=tuple(float(m) for m in mean), scale=tuple(float(s) for s in scale),
                          constant=tuple(constant))
    except ValueError as err:
        raise CheckpointError(f"{name}: config.normalization: {err}") from None
