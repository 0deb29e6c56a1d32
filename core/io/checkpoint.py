"""Safetensors checkpoints: tensors = the velocity network's state dict (+ source samples), metadata =
a format version and one JSON config. Loading validates all of it and never unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_from_bytes
from safetensors.torch import save as save_tensors_to_bytes
from torch import nn

from ..flow.model import FlowModel
from ..maths.couplings import STORED_COUPLINGS
from ..maths.imagespec import ImageSpec
from ..maths.normalizer import Normalizer
from ..maths.paths import make_path
from ..nets.models import MLPConfig, NetConfig, architecture, build_net, net_type
from ..nets.unet import UNetConfig
from .files import write_bytes_atomic

__all__ = ["FLOAT_DTYPES", "FORMAT", "FORMAT_VERSION", "CheckpointError", "TensorEntry", "check_state", "config_of",
           "from_bytes", "load", "read_bounded", "read_header", "read_metadata", "safetensors_metadata", "save",
           "to_bytes"]

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
#: Bytes per value of each safetensors dtype (the header's names).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
               "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
#: The dtypes a network's weights (and stored points) may have; they are read as float32.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
#: The dtypes of stored class indices (read as int64).
INT_DTYPES = ("U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64")


class CheckpointError(ValueError):
    """A model file that is not a valid flowscope checkpoint; the message names the file and the problem."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a safetensors header declares it (checked against the file's length), before it is read."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """How many values the tensor holds."""
        return math.prod(self.shape)


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
    return from_bytes(read_bounded(file), file.name, device)


def read_bounded(file: Path) -> bytes:
    """The bytes of a model (or classifier) file, refused before reading when missing or over MAX_FILE_BYTES."""
    if not file.is_file():
        raise CheckpointError(f"{file}: no such model file")
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{file.name}: {size / 2**20:.1f} MB is over the {MAX_FILE_BYTES >> 20} MB limit")
    return file.read_bytes()


def from_bytes(data: bytes, name: str = "model", device: str | torch.device = "cpu") -> FlowModel:
    """Parse and validate checkpoint bytes (an upload, or a file's content); `name` labels errors.

    The file is checked against itself before anything is allocated: the header's tensors (names, dtypes, shapes,
    extents) against the file's length, then the network the config describes, built on the meta device, against
    those tensors (`check_state`), and the stored points against the normalisation's columns. Only then are the
    tensors read and the network built, so that a small file cannot make the reader allocate more than it holds.
    """
    table, metadata = read_header(data, name)
    _check_format(metadata, name)
    config = _parse_config(metadata, name)
    net_config = _net_config(config["model"], name)
    kind = net_type(net_config)
    fields = {k: v for k, v in config["model"].items() if k != "type"}
    if kind == "mlp":
        fields.setdefault("fourier_features", 0)
    check_state(_net_maker(kind), fields, table, NET_PREFIX, name, "config.model",
                counts=("depth",) if kind == "mlp" else ("blocks", "multipliers"))
    _check_stored_points(config, table, len(config["normalization"]["mean"]), name)
    try:
        tensors = load_tensors_from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{name}: corrupt tensor data ({err})") from None
    flow = _build(config, tensors, name)
    return flow.to(device)


def read_metadata(data: bytes, name: str = "model") -> dict[str, str]:
    """The safetensors header's metadata, after checking the header's size, JSON and format tag."""
    metadata = safetensors_metadata(data, name)
    _check_format(metadata, name)
    return metadata


def _check_format(metadata: Mapping[str, str], name: str) -> None:
    """CheckpointError unless the metadata's format tag and version are this flowscope's."""
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a flowscope model (no 'format: {FORMAT}' in its metadata)")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{name}: unknown format version {version!r}; this flowscope reads {FORMAT_VERSION!r}")


def safetensors_metadata(data: bytes, name: str) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's header ({} if it has none), read without trusting the header
    (`read_header`); CheckpointError otherwise."""
    return read_header(data, name)[1]


def read_header(data: bytes, name: str) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """A safetensors file's tensors (dtype and shape, by name) and metadata, read without trusting the header: its
    length is bounded and checked against the file's before the JSON is parsed, and every tensor's extent must
    lie in the file and hold exactly its shape's values; CheckpointError naming the file and tensor otherwise."""
    if len(data) < 8:
        raise CheckpointError(f"{name}: too short to be a safetensors file ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name}: not a safetensors file: its first 8 bytes declare a header of {header_len} "
                              f"bytes, over the {MAX_HEADER_BYTES} byte limit")
    if 8 + header_len > len(data):
        raise CheckpointError(f"{name}: truncated file (header says {header_len} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError, and a number of over 4,300 digits
        raise CheckpointError(f"{name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: not a safetensors file (header is not a JSON object)")
    metadata = header.get("__metadata__")
    body = len(data) - 8 - header_len
    table = {str(key): _entry(value, body, name, str(key)) for key, value in header.items() if key != "__metadata__"}
    return table, ({str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {})


def _entry(value: Any, body: int, name: str, key: str) -> TensorEntry:
    """One header entry, checked: a known dtype, a shape of non-negative ints, and data offsets inside the file's
    `body` bytes spanning exactly the shape's values."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{name}: header entry {key!r} is not a tensor description")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(f"{name}: tensor {key!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not _naturals(shape):
        raise CheckpointError(f"{name}: tensor {key!r} has a malformed shape {shape!r}")
    if not isinstance(offsets, list) or not _naturals(offsets) or len(offsets) != 2 \
            or not offsets[0] <= offsets[1] <= body:
        raise CheckpointError(f"{name}: tensor {key!r} lies outside the file (offsets {offsets!r}, {body} data "
                              "bytes): truncated or corrupt file")
    entry = TensorEntry(str(dtype), tuple(shape))
    if entry.numel * DTYPE_BYTES[entry.dtype] != offsets[1] - offsets[0]:
        raise CheckpointError(f"{name}: tensor {key!r} of shape {entry.shape} and dtype {dtype} does not fit its "
                              f"{offsets[1] - offsets[0]} bytes")
    return entry


def _naturals(values: list[Any]) -> bool:
    """Whether every value is an int >= 0 (not a bool)."""
    return all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in values)


def check_state(make: Callable[[dict[str, Any]], nn.Module], fields: dict[str, Any],
                table: Mapping[str, TensorEntry], prefix: str, name: str, where: str,
                counts: tuple[str, ...] = ()) -> None:
    """Check that the network `make(fields)` has exactly the file's tensors under `prefix` (names, shapes, float
    dtypes), without allocating it: first every int in `fields` must be at most the values those tensors hold
    and every field of `counts` (a repeat count, or a list's length) at most their number, so that the network
    is bounded by the file; then it is built on the meta device (shapes without storage) and compared. A
    mismatch is a CheckpointError naming the tensor and the fields of `where` that size it.
    """
    state = {k[len(prefix):]: e for k, e in table.items() if k.startswith(prefix)}
    values, tensors = sum(e.numel for e in state.values()), len(state)
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, int) and not isinstance(v, bool) and v > values:
                says = "holds" if isinstance(value, list) else "is"
                raise CheckpointError(f"{name}: {where}.{key} {says} {v}, more than the {values} values of the file's "
                                      "network tensors")
        count = len(value) if isinstance(value, list) else value
        if key in counts and isinstance(count, int) and count > tensors:
            raise CheckpointError(f"{name}: {where}.{key} is {value}, more than the {tensors} network tensors in "
                                  "the file")
    expected = _meta_shapes(make, fields)
    if expected is None:
        raise CheckpointError(f"{name}: {where} does not describe a network")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        changed = missing + unexpected
        culprits = _culprits(make, fields, lambda shapes: any((k in shapes) != (k in expected) for k in changed))
        named = _naming(culprits, fields, where)
        raise CheckpointError(f"{name}: tensors do not match the config's model{f' ({named})' if named else ''}: "
                              f"missing {[prefix + k for k in missing]}, unexpected {[prefix + k for k in unexpected]}")
    for key, shape in expected.items():
        entry = state[key]
        if entry.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{name}: tensor {prefix + key!r} has dtype {entry.dtype}, expected one of "
                                  f"{', '.join(FLOAT_DTYPES)}")
        if entry.shape != shape:
            culprits = _culprits(make, fields, _moves(key, shape, entry.shape))
            named = _naming(culprits, fields, where)
            says = f"{named}, so the model" if named else "the config's model"
            raise CheckpointError(f"{name}: {says} needs tensor {prefix + key!r} of shape {shape}, but the file's "
                                  f"has shape {entry.shape}")


def _moves(key: str, shape: tuple[int, ...], found: tuple[int, ...]) -> Callable[[dict[str, tuple[int, ...]]], bool]:
    """Whether other meta-built shapes change tensor `key` on the axes where the file's `found` differs from the
    expected `shape` (for `_culprits`: the fields that size those axes)."""
    axes = [i for i in range(len(shape)) if len(found) != len(shape) or found[i] != shape[i]]

    def changes(shapes: dict[str, tuple[int, ...]]) -> bool:
        other = shapes.get(key)
        return other is not None and (len(other) != len(shape) or any(other[i] != shape[i] for i in axes))
    return changes


def _meta_shapes(make: Callable[[dict[str, Any]], nn.Module],
                 fields: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The state dict's shapes of `make(fields)`, built on the meta device (no storage); None if the fields are
    not a valid architecture."""
    try:
        with torch.device("meta"):
            module = make(fields)
    except (TypeError, ValueError):
        return None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _culprits(make: Callable[[dict[str, Any]], nn.Module], fields: dict[str, Any],
              changes: Callable[[dict[str, tuple[int, ...]]], bool]) -> list[str]:
    """The fields on which a mismatch depends: those whose one-step change (an int by +-1 or to 0, a bool flipped, a
    list one longer or shorter or one element +-1) changes what `changes` looks at in the meta-built shapes."""
    found = []
    for key, value in fields.items():
        variants: list[Any] = []
        if isinstance(value, bool):
            variants = [not value]
        elif isinstance(value, int):
            variants = [value + 1, value - 1, 0]  # 0: a feature off (no classes, no Fourier features)
        elif isinstance(value, list) and value:
            variants = [value + value[-1:], value[:-1]]
            variants += [value[:i] + [v + d] + value[i + 1:] for i, v in enumerate(value) if isinstance(v, int)
                         for d in (1, -1)]
        for variant in variants:
            shapes = _meta_shapes(make, {**fields, key: variant})
            if shapes is not None and changes(shapes):
                found.append(key)
                break
    return found


def _naming(culprits: list[str], fields: dict[str, Any], where: str) -> str:
    """'where.a is 1 and where.b is 2' for the culprit fields ('' for none)."""
    return " and ".join(f"{where}.{key} is {fields[key]!r}" for key in culprits)


def _net_maker(kind: str) -> Callable[[dict[str, Any]], nn.Module]:
    """The network of config.model's fields (less its type), for `check_state`."""
    def make(fields: dict[str, Any]) -> nn.Module:
        return architecture(MLPConfig(**fields) if kind == "mlp" else UNetConfig(**fields))
    return make


def _check_stored_points(config: dict[str, Any], table: Mapping[str, TensorEntry], data_dim: int, name: str) -> None:
    """The tensors besides the network, from the header: source samples exactly when config.source says so, and
    the data sample and its labels, each of the shape and dtype the model reads; no other tensor."""
    for key in table:
        if not key.startswith(NET_PREFIX) and key not in (SOURCE_KEY, DATA_KEY, DATA_LABELS_KEY):
            raise CheckpointError(f"{name}: tensor {key!r} is not part of a flowscope model")
    source, data, labels = table.get(SOURCE_KEY), table.get(DATA_KEY), table.get(DATA_LABELS_KEY)
    if config["source"] == "samples" and (source is None or source.dtype not in FLOAT_DTYPES
                                          or len(source.shape) != 2 or source.shape[1] != data_dim
                                          or source.shape[0] < 1):
        raise CheckpointError(f"{name}: config says source samples are stored, but tensor {SOURCE_KEY!r} of shape "
                              f"(n, {data_dim}) is missing or malformed")
    if config["source"] != "samples" and source is not None:
        raise CheckpointError(f"{name}: config.source is {config['source']!r} but the file holds tensor "
                              f"{SOURCE_KEY!r}")
    if data is not None and (data.dtype not in FLOAT_DTYPES or len(data.shape) != 2 or data.shape[1] != data_dim):
        raise CheckpointError(f"{name}: tensor {DATA_KEY!r} must be floating-point data of shape (n, {data_dim}), "
                              f"got {data.dtype} {data.shape}")
    if labels is not None and (data is None or labels.dtype not in INT_DTYPES or labels.shape != data.shape[:1]):
        raise CheckpointError(f"{name}: tensor {DATA_LABELS_KEY!r} must hold one integer class index per row of "
                              f"{DATA_KEY!r}")


def _parse_config(metadata: Mapping[str, str], name: str) -> dict[str, Any]:
    """The JSON config, with every field that `_build` relies on checked for presence and type."""
    try:
        config = json.loads(metadata.get("config", ""))
    except ValueError as err:  # JSONDecodeError, or an integer of over 4300 digits
        raise CheckpointError(f"{name}: metadata 'config' is not JSON ({getattr(err, 'msg', err)})") from None
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
    """Rebuild the FlowModel from a config and tensors that `check_state` and `_check_stored_points` have matched:
    check the values (finite weights and data, class indices in range) and load them."""
    path_cfg = {k: v for k, v in config["path"].items() if k != "name"}
    try:
        path = make_path(config["path"]["name"], **path_cfg)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{name}: invalid config: {err}") from None
    state = {k[len(NET_PREFIX):]: v for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    for key, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{name}: tensor {NET_PREFIX + key!r} holds NaN or inf")
    net = build_net(_net_config(config["model"], name))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net.eval()
    normalizer = _normalizer(config["normalization"], net.config.dim, name)
    source, data = tensors.get(SOURCE_KEY), tensors.get(DATA_KEY)
    for key, points in ((SOURCE_KEY, source), (DATA_KEY, data)):
        if points is not None and not torch.isfinite(points).all():
            raise CheckpointError(f"{name}: tensor {key!r} holds NaN or inf")
    labels = tuple(config.get("labels", []))
    data_labels = tensors.get(DATA_LABELS_KEY)
    if data_labels is not None and not bool(((data_labels >= 0) & (data_labels < len(labels))).all()):
        raise CheckpointError(f"{name}: tensor {DATA_LABELS_KEY!r} must hold one class index in "
                              f"[0, {len(labels)}) per row of {DATA_KEY!r}")
    reserved = {"model", "path", "coupling", "normalization", "source", "labels", "image"}
    info = {k: v for k, v in config.items() if k not in reserved}
    return FlowModel(net=net, path=path, normalizer=normalizer,
                     source=None if source is None else source.float(),
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
