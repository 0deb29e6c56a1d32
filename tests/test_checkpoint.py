"""Checkpoints: round trip, atomic writes, and a clear message for every kind of broken file."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_tensors

from flowscope import FlowModel, MLPConfig, SolverConfig, TrainConfig, train
from flowscope.io.checkpoint import CheckpointError, config_of, from_bytes, load, read_metadata, save, to_bytes


def _metadata_bytes(flow: FlowModel, mutate: object) -> bytes:
    """Checkpoint bytes whose config went through `mutate(config) -> config`."""
    config = mutate(json.loads(json.dumps(config_of(flow))))  # type: ignore[operator]
    tensors = {"net." + k: v.contiguous() for k, v in flow.net.state_dict().items()}
    return save_tensors(tensors, metadata={"format": "flowscope", "format_version": "1", "config": json.dumps(config)})


def test_round_trip_is_exact(small_flow: FlowModel, tmp_path: Path) -> None:
    file = save(small_flow, tmp_path / "m.safetensors")
    back = load(file)
    for (k, v), w in zip(small_flow.net.state_dict().items(), back.net.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert back.path.config() == small_flow.path.config()
    assert back.normalizer == small_flow.normalizer and back.info["dataset"] == "moons"
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    solver = SolverConfig("euler", steps=5)
    assert torch.equal(small_flow.sample(10, solver=solver, generator=gen()).samples,
                       back.sample(10, solver=solver, generator=gen()).samples)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_save_is_atomic_when_writing_fails(small_flow: FlowModel, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"previous")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save(small_flow, target)
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _without(key: str, where: str | None = None) -> object:
    def mutate(config: dict) -> dict:  # type: ignore[type-arg]
        (config[where] if where else config).pop(key)
        return config
    return mutate


def _set(where: str, key: str, value: object) -> object:
    def mutate(config: dict) -> dict:  # type: ignore[type-arg]
        config[where][key] = value
        return config
    return mutate


BROKEN_CONFIGS = [
    (_without("path"), "config has no field 'path'"),
    (_without("width", "model"), "config.model has no field 'width'"),
    (_set("model", "width", "wide"), "config.model.width must be int, got str"),
    (_set("model", "width", 48), "config.model.width is 48, so the model needs tensor 'net.net.0.weight' of shape "
                                 "(48, 71), but the file's has shape (64, 71)"),
    (_set("model", "depth", 5), "tensors do not match the config's model (config.model.depth is 5)"),
    (_set("normalization", "scale", -1.0), "scale must be > 0"),
    (_set("path", "name", "warp"), "unknown path 'warp'"),
    (_set("model", "fourier_scale", "big"), "config.model.fourier_scale must be int or float, got str"),
    (_set("model", "fourier_features", 16), "config.model.fourier_features is 16, so the model needs tensor "
                                            "'net.fourier.frequencies' of shape (2, 16)"),
    (_without("fourier_features", "model"), "unexpected ['net.fourier.frequencies']"),
]


@pytest.mark.parametrize("mutate,message", BROKEN_CONFIGS)
def test_bad_config_is_named(small_flow: FlowModel, mutate: object, message: str) -> None:
    with pytest.raises(CheckpointError, match=re.escape(message)):
        from_bytes(_metadata_bytes(small_flow, mutate), "bad.safetensors")


def test_files_from_before_fourier_features_still_load(moons: np.ndarray) -> None:
    """Their config has no fourier_* fields and their tensors no frequencies: the plain MLP they were."""
    plain = train(torch.from_numpy(moons), model=MLPConfig(dim=2, width=16, depth=1, fourier_features=0),
                  config=TrainConfig(steps=5, batch_size=8, device="cpu")).model

    def drop_fourier_fields(config: dict) -> dict:  # type: ignore[type-arg]
        for key in ("fourier_features", "fourier_scale"):
            config["model"].pop(key)
        return config

    back = from_bytes(_metadata_bytes(plain, drop_fourier_fields), "old.safetensors")
    x, t = torch.randn(7, 2), torch.rand(7)
    assert back.net.fourier is None and torch.equal(back.net(x, t), plain.net(x, t))


def test_corrupt_files_are_named(small_flow: FlowModel, tmp_path: Path) -> None:
    good = to_bytes(small_flow)
    cases = {
        "truncated": (good[: len(good) // 2], "lies outside the file"),
        "tiny": (good[:5], "too short"),
        "huge_header": (struct.pack("<Q", 1 << 40) + good[8:], "over the 1048576 byte limit"),
        "not_json": (struct.pack("<Q", 4) + b"\xff\xfe{}" + good[12:], "header is not JSON"),
        "other_format": (save_tensors({"a": torch.zeros(2)}), "not a flowscope model"),
        "future": (good.replace(b'"format_version":"1"', b'"format_version":"9"'), "unknown format version '9'"),
        "config_not_json": (save_tensors({"a": torch.zeros(1)}, metadata={"format": "flowscope",
                            "format_version": "1", "config": "{oops"}), "metadata 'config' is not JSON"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as caught:
            from_bytes(data, f"{name}.safetensors")
        assert f"{name}.safetensors" in str(caught.value)
    with pytest.raises(CheckpointError, match="no such model file"):
        load(tmp_path / "missing.safetensors")


def test_nan_weights_are_refused(small_flow: FlowModel) -> None:
    tensors = {"net." + k: v.clone() for k, v in small_flow.net.state_dict().items()}
    tensors["net.net.0.weight"][0, 0] = float("nan")
    metadata = {"format": "flowscope", "format_version": "1", "config": json.dumps(config_of(small_flow))}
    with pytest.raises(CheckpointError, match="holds NaN or inf"):
        from_bytes(save_tensors(tensors, metadata=metadata))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 10**9), byte=st.integers(0, 255))
def test_bit_flips_never_crash_the_reader(small_flow: FlowModel, position: int, byte: int) -> None:
    """Any single corrupted byte gives a valid model or a CheckpointError, nothing else."""
    data = bytearray(to_bytes(small_flow))
    data[position % len(data)] = byte
    try:
        flow = from_bytes(bytes(data))
    except CheckpointError:
        return
    assert flow.dim == 2


def test_metadata_reader_exposes_config(small_flow: FlowModel) -> None:
    meta = read_metadata(to_bytes(small_flow))
    assert json.loads(meta["config"])["path"]["name"] == "ot"
