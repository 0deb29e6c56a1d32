"""Hostile model files: a file whose config disagrees with its tensors, in any field that sizes the network, is
refused by name before anything of the config's size is built, so a 100 kB file cannot make `flowscope sample`
or the explorer's upload allocate gigabytes. Crafted from the zoo's moons (MLP), digits (conditional U-Net) and
digits classifier files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from flowscope.cli.commands import main
from flowscope.io.checkpoint import CheckpointError, from_bytes
from flowscope.zoo import registry as zoo

MLP = zoo.directory() / "moons-ot.safetensors"
UNET = zoo.directory() / "digits-cond.safetensors"
CLASSIFIER = zoo.directory() / "digits-classifier.safetensors"

Edit = Callable[[dict[str, Any]], object]


def _header(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (a dict) and its data bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _raw(header: dict[str, Any], body: bytes) -> bytes:
    """A safetensors file of this header and body, written by hand (so that it may lie)."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _config(source: Path, edit: Edit) -> bytes:
    """`source` with its JSON config put through `edit` (in place), the tensors untouched."""
    header, body = _header(source.read_bytes())
    config = json.loads(header["__metadata__"]["config"])
    edit(config)
    header["__metadata__"]["config"] = json.dumps(config)
    return _raw(header, body)


def _tensors(source: Path, edit: Callable[[dict[str, torch.Tensor]], object]) -> bytes:
    """`source` with its tensors put through `edit` (in place), the metadata untouched."""
    data = source.read_bytes()
    tensors = load_tensors(data)
    edit(tensors)
    return save_tensors(tensors, metadata=_header(data)[0]["__metadata__"])


def _set(where: str, **values: Any) -> Edit:
    """An edit setting fields of config[where] ("" for the config itself)."""
    return lambda config: (config[where] if where else config).update(values)


def _both(*edits: Edit) -> Edit:
    """Edits one after the other."""
    return lambda config: [edit(config) for edit in edits]


def _unet_channels(c: int) -> Edit:
    """A U-Net config of c channels throughout: the model, its image and its normalisation agree."""
    return _both(_set("model", channels=c), lambda config: config["image"].update(channels=c),
                 _set("normalization", mean=[8.0] * (64 * c), scale=[8.0] * (64 * c)))


def _classes(n: int) -> Edit:
    """n classes in the model and its labels."""
    return _both(_set("model", num_classes=n), _set("", labels=[f"c{i}" for i in range(n)]))


def _header_edit(source: Path, edit: Callable[[dict[str, Any]], object]) -> bytes:
    """`source` with its raw header (tensor entries included) put through `edit`."""
    header, body = _header(source.read_bytes())
    edit(header)
    return _raw(header, body)


def _nan(tensors: dict[str, torch.Tensor]) -> None:
    tensors["net.net.0.weight"][0, 0] = float("nan")


#: name -> (file bytes, what the refusal must name). Model files:
MODEL_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    # the MLP (moons-ot: dim 2, width 128, depth 3, 2 time features, 32 Fourier features)
    "mlp-width": (lambda: _config(MLP, _set("model", width=4096)), "config.model.width is 4096"),
    "mlp-width-huge": (lambda: _config(MLP, _set("model", width=10**9)), "config.model.width is 1000000000"),
    "mlp-depth": (lambda: _config(MLP, _set("model", depth=4)), "config.model.depth is 4"),
    "mlp-depth-huge": (lambda: _config(MLP, _set("model", depth=10**7)), "config.model.depth is 10000000"),
    "mlp-dim": (lambda: _config(MLP, _both(_set("model", dim=3), _set("normalization", mean=[0, 0, 0]))),
                "config.model.dim is 3"),
    "mlp-dim-huge": (lambda: _config(MLP, _set("model", dim=10**9)), "config.normalization has 2 columns"),
    "mlp-time-features": (lambda: _config(MLP, _set("model", time_features=3)), "config.model.time_features is 3"),
    "mlp-time-features-huge": (lambda: _config(MLP, _set("model", time_features=10**9)),
                               "config.model.time_features is 1000000000"),
    "mlp-fourier": (lambda: _config(MLP, _set("model", fourier_features=64)), "config.model.fourier_features is 64"),
    "mlp-fourier-huge": (lambda: _config(MLP, _set("model", fourier_features=10**9)),
                         "config.model.fourier_features is 1000000000"),
    "mlp-fourier-none": (lambda: _config(MLP, _set("model", fourier_features=0)),
                         "config.model.fourier_features is 0"),
    "mlp-classes": (lambda: _config(MLP, _classes(10)), "config.model.num_classes is 10"),
    "mlp-classes-huge": (lambda: _config(MLP, _classes(10**4)), "num_classes must lie in [0, 256]"),
    "mlp-activation": (lambda: _config(MLP, _set("model", activation="swish")), "unknown activation 'swish'"),
    "mlp-fourier-scale": (lambda: _config(MLP, _set("model", fourier_scale=-1)), "fourier_scale must be > 0"),
    "mlp-as-unet": (lambda: _config(MLP, _set("model", type="unet")), "config.model has no field 'channels'"),
    "mlp-normalizer": (lambda: _config(MLP, _set("normalization", mean=[0.0] * 3)),
                       "config.normalization has 3 columns"),
    "mlp-labels": (lambda: _config(MLP, _set("", labels=["a", "b"])), "config.labels names 2 classes"),
    "mlp-source": (lambda: _config(MLP, _set("", source="samples")), "tensor 'source'"),
    # the conditional U-Net (digits-cond: 1 x 8 x 8, base 32, multipliers [1, 2], 1 block, attention, 10 classes)
    "unet-base": (lambda: _config(UNET, _set("model", base=4096)), "config.model.base is 4096"),
    "unet-base-huge": (lambda: _config(UNET, _set("model", base=10**9)), "config.model.base is 1000000000"),
    "unet-multipliers": (lambda: _config(UNET, _set("model", multipliers=[1, 2, 4])), "config.model.multipliers"),
    "unet-multiplier-huge": (lambda: _config(UNET, _set("model", multipliers=[1, 10**9])),
                             "config.model.multipliers holds 1000000000"),
    "unet-levels-huge": (lambda: _config(UNET, _set("model", multipliers=[1] * 100_000)),
                         "config.model.multipliers is [1, 1,"),
    "unet-blocks": (lambda: _config(UNET, _set("model", blocks=2)), "config.model.blocks is 2"),
    "unet-blocks-huge": (lambda: _config(UNET, _set("model", blocks=10**8)), "config.model.blocks is 100000000"),
    "unet-attention": (lambda: _config(UNET, _set("model", attention=False)), "config.model.attention is False"),
    "unet-groups-huge": (lambda: _config(UNET, _set("model", groups=10**12)), "config.model.groups is 1000000000000"),
    "unet-classes": (lambda: _config(UNET, _classes(11)), "config.model.num_classes is 11"),
    "unet-unconditional": (lambda: _config(UNET, _classes(0)), "config.model.num_classes is 0"),
    "unet-channels": (lambda: _config(UNET, _unet_channels(3)), "config.model.channels is 3"),
    "unet-image-shape": (lambda: _config(UNET, _set("model", height=256, width=256)),
                         "config.normalization has 64 columns and 0 constant ones, but the model is 65536"),
    "unet-image-huge": (lambda: _config(UNET, lambda config: config["image"].update(height=10**9)),
                        "config.image has shape (1, 1000000000, 8)"),
    "unet-image-sides": (lambda: _config(UNET, _both(_set("model", height=16, width=16),
                                                     lambda config: config["image"].update(height=16, width=16),
                                                     _set("normalization", mean=[8.0] * 256, scale=[8.0] * 256))),
                         "tensor 'data' must be floating-point data of shape (n, 256)"),
    "unet-dropout": (lambda: _config(UNET, _set("model", dropout=2.0)), "dropout must lie in [0, 1)"),
    "unet-no-image": (lambda: _config(UNET, lambda config: config.pop("image")), "needs config.image"),
    # the file's own structure
    "header-huge": (lambda: struct.pack("<Q", 1 << 40) + MLP.read_bytes()[8:], "over the 1048576 byte limit"),
    "truncated": (lambda: MLP.read_bytes()[: MLP.stat().st_size // 2], "lies outside the file"),
    "shape-lie": (lambda: _header_edit(MLP, lambda h: h["net.net.0.weight"].update(shape=[10**6, 10**6])),
                  "tensor 'net.net.0.weight' of shape (1000000, 1000000) and dtype F32 does not fit"),
    "dtype": (lambda: _tensors(MLP, lambda t: t.update({"net.net.0.weight": t["net.net.0.weight"].int()})),
              "tensor 'net.net.0.weight' has dtype I32"),
    "nan": (lambda: _tensors(MLP, _nan), "tensor 'net.net.0.weight' holds NaN or inf"),
    "extra-tensor": (lambda: _tensors(MLP, lambda t: t.update(evil=torch.zeros(3))),
                     "tensor 'evil' is not part of a flowscope model"),
    "extra-net-tensor": (lambda: _tensors(MLP, lambda t: t.update({"net.evil": torch.zeros(3)})),
                         "unexpected ['net.evil']"),
    "missing-tensor": (lambda: _tensors(MLP, lambda t: t.pop("net.net.0.bias")), "missing ['net.net.0.bias']"),
    "data-columns": (lambda: _tensors(UNET, lambda t: t.update(data=t["data"][:, :10].contiguous())), "tensor 'data'"),
    "data-labels-float": (lambda: _tensors(UNET, lambda t: t.update(data_labels=t["data_labels"].float())),
                          "tensor 'data_labels' must hold one integer class index"),
    "data-labels-range": (lambda: _tensors(UNET, lambda t: t["data_labels"].__setitem__(0, 99)),
                          "tensor 'data_labels' must hold one class index in [0, 10)"),
}

#: The classifier (digits-classifier: 1 channel, width 32, 10 classes).
CLASSIFIER_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "classifier-width": (lambda: _config(CLASSIFIER, _set("", width=64)), "config.width is 64"),
    "classifier-width-huge": (lambda: _config(CLASSIFIER, _set("", width=10**9)), "config.width is 1000000000"),
    "classifier-classes": (lambda: _config(CLASSIFIER, _set("", classes=[str(i) for i in range(11)])),
                           "config.classes is"),
    "classifier-channels": (lambda: _config(CLASSIFIER, lambda c: c["spec"].update(channels=3)),
                            "config.spec.channels is 3"),
    "classifier-image-huge": (lambda: _config(CLASSIFIER, lambda c: c["spec"].update(height=10**9)),
                              "config.spec must be an image of at most 4 channels"),
    "classifier-nan": (lambda: _tensors(CLASSIFIER, lambda t: t["head.weight"].__setitem__((0, 0), float("inf"))),
                       "tensor 'head.weight' holds NaN or inf"),
    "classifier-truncated": (lambda: CLASSIFIER.read_bytes()[:-100], "lies outside the file"),
}

#: Reads every crafted file in a fresh interpreter and prints {file: the refusal, or null if it loaded}.
CHILD = """
import json, resource, sys
from pathlib import Path
from flowscope.evaluation.classifier import load_classifier
from flowscope.io.checkpoint import CheckpointError, load
found = {}
for file in sorted(Path(sys.argv[1]).iterdir()):
    try:
        (load_classifier if file.name.startswith("classifier-") else load)(file)
        found[file.name] = None
    except CheckpointError as err:
        found[file.name] = str(err)
print(json.dumps({"found": found, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of every crafted file, plus the three untouched ones."""
    folder = tmp_path_factory.mktemp("hostile")
    for name, (make, _) in {**MODEL_CASES, **CLASSIFIER_CASES}.items():
        (folder / f"{name}.safetensors").write_bytes(make())
    for file in (MLP, UNET):
        (folder / f"pristine-{file.name}").write_bytes(file.read_bytes())
    (folder / "classifier-pristine.safetensors").write_bytes(CLASSIFIER.read_bytes())
    return folder


@pytest.mark.slow
def test_every_crafted_file_is_refused_by_name_with_bounded_memory(crafted: Path) -> None:
    """In a fresh interpreter, so that its peak memory (as it reports it) is the reader's: under 1 GB for all of them
    together (before the check, a width-4096 file alone made the reader allocate gigabytes)."""
    run = subprocess.run([sys.executable, "-c", CHILD, str(crafted)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["peak_kb"] < 1 << 20, f"peak RSS {report['peak_kb'] / 1024:.0f} MB"
    found = report["found"]
    for file in ("pristine-moons-ot.safetensors", "pristine-digits-cond.safetensors",
                 "classifier-pristine.safetensors"):
        assert found.pop(file) is None, file  # the untouched files load: the refusals are the edits'
    wrong = {name: found[f"{name}.safetensors"] for name, (_, fragment) in {**MODEL_CASES, **CLASSIFIER_CASES}.items()
             if not (found[f"{name}.safetensors"] or "").startswith(f"{name}.safetensors: ")
             or fragment not in found[f"{name}.safetensors"] or "\n" in found[f"{name}.safetensors"]}
    assert not wrong, wrong  # None: the file was accepted


@pytest.mark.parametrize("name", ["mlp-width", "mlp-depth-huge", "unet-base", "truncated", "dtype"])
def test_the_cli_refuses_in_one_line(crafted: Path, tmp_path: Path, name: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.npy"
    assert main(["sample", str(crafted / f"{name}.safetensors"), "-n", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"flowscope sample: error: {name}.safetensors: ")
    assert MODEL_CASES[name][1] in err and "Traceback" not in err
    assert not out.exists()


def test_the_explorer_upload_refuses_by_name(crafted: Path) -> None:
    uploads = pytest.importorskip("flowscope_ui.uploads")
    data = (crafted / "mlp-width.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=r"^upload.safetensors: config.model.width is 4096"):
        uploads.read_model(data, "upload.safetensors")
    assert from_bytes((crafted / "pristine-moons-ot.safetensors").read_bytes()).dim == 2
