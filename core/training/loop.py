"""Conditional flow matching training: the CFM loss and a small, reproducible trainer."""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..flow.model import FlowModel
from ..maths.couplings import COUPLINGS, pair
from ..maths.imagespec import ImageSpec
from ..maths.normalizer import Normalizer
from ..maths.paths import AffinePath, make_path, ve_smax_for
from ..nets.models import MAX_CLASSES, MLPConfig, NetConfig, build_net, sized
from ..nets.unet import UNetConfig, use_generator
from . import distributed
from .batches import DataLike, DeviceRows, Rows, fit_rows, rows_for
from .distributed import Group
from .readback import Checked, EmaSnapshot, LossReadback, check_every

__all__ = ["PRECISIONS", "RANDOM_BLOCK", "Callback", "StepInfo", "TrainConfig", "TrainResult", "TrainingDiverged",
           "cfm_loss", "check_labels", "fit_pairs", "path_for_data", "seed_generator", "train"]

#: Steps whose randomness is drawn at once.
RANDOM_BLOCK = 64
#: TrainConfig.precision values: "auto" is bf16 autocast for a U-Net on CUDA, float32 otherwise.
PRECISIONS = ("auto", "fp32", "bf16")
#: Rank r > 0 of a distributed run draws its batches from seed + r * RANK_SEED_STRIDE (rank 0: the seed itself).
RANK_SEED_STRIDE = 1 << 32


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; every field is stored in the checkpoint.

    `normalize`: "column" standardises each data column (a diagonal map, so one column of values ~1000
    does not set the scale of the others); "global" uses one scale for all columns (the isotropic map of
    the 2-D zoo models). Either way the paths are isotropic in the normalised coordinates.

    With labels: `label_dropout` is the probability that a training point's label is replaced by the "no
    label" token (classifier-free guidance trains one network for v(x, t, y) and v(x, t, none));
    `pair_within_class` makes a minibatch-OT coupling pair noise and data only within each class.

    `ot_block`: the "ot" coupling is solved exactly within random blocks of this many rows of the batch
    (`couplings.blockwise_ot_permutation`); 0 solves it over the whole batch, as every model before issue
    18 did. At batch 512, blocks of 64 made the OT step 1.2x an independent one (whole batch: 7x) at the
    same dopri5 NFE; straightness 0.02 against 0.007 for the whole batch, 1.66 independent
    (bench/results_cost.md). `to_dict` leaves a 0 out, so a checkpoint without the field was
    paired over the whole batch, and the zoo's files stay as they were built.

    Speed and scale (see `readback` and `distributed`): `check_every` is K, the steps between loss read-backs
    (None: 1 on CPU, so every step is checked before the EMA absorbs it; 64 on CUDA, so the GPU is not waited
    on every step); `compile_step` wraps the network in `torch.compile`. Under torchrun `batch_size` is per
    rank: N ranks train at a global batch of N * batch_size. `stream`: batches come from a DataLoader over the
    data on the host instead of from all rows on the device (None: for a numpy array such as a memory-mapped
    .npy, or a tensor above `batches.DEVICE_DATA_BYTES`; see `batches`). `precision`: "bf16" runs the network
    under bfloat16 autocast (the loss, optimiser and EMA stay float32); "auto" does so for a U-Net on CUDA,
    where convolutions run ~2x faster in bf16 on recent GPUs, and keeps float32 elsewhere.
    """

    #: 6,000 (was 20,000 until issue 18): with the cosine schedule and the width-64 default MLP, W2 / floor
    #: was 1.05 / 0.97 / 1.12 on moons / 8gaussians / checkerboard (bench/results_cost.md; 1.11 at most at 5,000
    #: and 8,000 steps in a sweep).
    steps: int = 6000
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    device: str | None = None
    normalize: str = "column"
    label_dropout: float = 0.1
    pair_within_class: bool = False
    ot_block: int = 64
    check_every: int | None = None
    compile_step: bool = False
    stream: bool | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "steps must be >= 1": self.steps >= 1,
            "batch_size must be >= 2": self.batch_size >= 2,
            "lr must be > 0 and finite": self.lr > 0 and math.isfinite(self.lr),
            "optimizer must be 'adam' or 'adamw'": self.optimizer in ("adam", "adamw"),
            "schedule must be 'constant' or 'cosine'": self.schedule in ("constant", "cosine"),
            "ema_decay must lie in [0, 1)": 0.0 <= self.ema_decay < 1.0,
            "grad_clip must be >= 0": self.grad_clip >= 0,
            "normalize must be 'column' or 'global'": self.normalize in ("column", "global"),
            "label_dropout must lie in [0, 1)": 0.0 <= self.label_dropout < 1.0,
            "ot_block must be >= 0": self.ot_block >= 0,
            "check_every must be >= 1": self.check_every is None or self.check_every >= 1,
            f"precision must be one of {PRECISIONS}": self.precision in PRECISIONS,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError("training config: " + "; ".join(failed))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (without ot_block when it is 0: whole-batch OT, the meaning of its absence; without
        precision when "auto", as files before it)."""
        fields = asdict(self)
        if not self.ot_block:
            del fields["ot_block"]
        if self.precision == "auto":
            del fields["precision"]
        return fields

    def autocast(self, device: torch.device, net: nn.Module) -> bool:
        """Whether the network runs under bfloat16 autocast on `device` (see `precision`)."""
        if self.precision == "auto":
            return device.type == "cuda" and isinstance(getattr(net, "config", None), UNetConfig)
        return self.precision == "bf16"

    def learning_rate(self, step: int) -> float:
        """The learning rate at a 0-based step: linear warm-up, then constant or cosine decay to 1% of lr."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


@dataclass(frozen=True)
class StepInfo:
    """What a per-step callback sees: progress and the running loss."""

    step: int
    steps: int
    loss: float
    lr: float
    seconds: float


#: Called after every step with the progress and the live model (EMA weights); return True to stop. With
#: check_every = K > 1 it is called for the K steps of a block once their losses are read; under torchrun it
#: runs on rank 0 only and its stop is every rank's stop.
Callback = Callable[[StepInfo, FlowModel], "bool | None"]


@dataclass
class TrainResult:
    """The trained flow (EMA weights) and its loss curve."""

    model: FlowModel
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; `result.model` holds the last weights whose loss was finite."""

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result


def cfm_loss(net: nn.Module, x_t: Tensor, t: Tensor, u_t: Tensor, y: Tensor | None = None) -> Tensor:
    """Conditional flow matching loss E ||v_theta(x_t, t[, y]) - u_t(x_t | x1)||^2 over a batch (one fused op)."""
    prediction = net(x_t, t) if y is None else net(x_t, t, y)
    return F.mse_loss(prediction, u_t, reduction="sum") / x_t.shape[0]


def path_for_data(name: str, z: Tensor, **params: float) -> AffinePath:
    """Build a path for normalised data `z`; VE's smax defaults to the data's largest pairwise distance."""
    if name == "ve" and "smax" not in params:
        params["smax"] = ve_smax_for(z)
    return make_path(name, **params)


def train(
    data: DataLike,
    *,
    path: str | AffinePath = "ot",
    model: NetConfig | None = None,
    config: TrainConfig = TrainConfig(),
    source: Tensor | None = None,
    coupling: str = "independent",
    dataset: str = "custom",
    dataset_hash: str = "",
    callback: Callback | None = None,
    resume: FlowModel | None = None,
    labels: Tensor | None = None,
    label_names: Sequence[str] = (),
    image: ImageSpec | None = None,
) -> TrainResult:
    """Train a velocity field by conditional flow matching on `data` [N, d] (data coordinates), or on images.

    Args:
        data: training points: a tensor, or a numpy array such as `batches.open_npy`'s memory map (streamed);
            or images [N, C, H, W], which train as flat vectors of C * H * W pixels (an image model).
        path: a path name ("ot", "vp", "ve", "cosine", "icfm") or a built path (normalised coordinates).
        model: architecture; defaults to MLPConfig(dim=d), and for images to UNetConfig of their shape.
        config: optimisation settings, seed and device.
        source: source samples [M, d] for a non-Gaussian source; None for the path's Gaussian prior.
        coupling: "independent", "ot" (exact minibatch OT) or "sinkhorn".
        dataset, dataset_hash: recorded in the model's info.
        callback: called after each step; returning True stops training early (a consistent model).
        resume: continue training this model (its weights, path and normalisation; a fresh optimiser).
        labels: class indices [N] in [0, len(label_names)) for a conditional model (see `TrainConfig`).
        label_names: the classes' names, in index order; stored with the model.
        image: the images' shape and pixel range, mapped to [-1, 1] for training (`ImageSpec.normalizer`) and
            stored with the model; by default `ImageSpec.infer` of 4-D data. Given with 2-D data, the rows are
            flat images of this spec.

    Under torchrun (`torchrun --nproc_per_node N script.py`, or `-m flowscope train`) every rank calls this
    with the same arguments: the ranks train one DistributedDataParallel model (gloo on CPU, nccl on CUDA,
    cuda:LOCAL_RANK each), each drawing its own batches, and all return the same weights. A minibatch-OT
    coupling is solved per rank on its local batch.

    A training sets no process-wide torch state: every draw (initial weights, batches, noise, times, label
    dropout) comes from generators seeded by `config.seed`, so trainings running at once in one process (the
    explorer's worker threads) give each the weights it gives alone; torch's thread count is the program's to
    set, once (the explorer does at start-up), never a training's.

    Raises:
        TrainingDiverged: on a non-finite loss (on any rank: then on all), carrying the last good model.
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; expected one of {COUPLINGS}")
    data, image = _flat_images(data, image)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"training data must have shape (n >= 2, d), got {tuple(data.shape)}")
    if source is not None and (source.dim() != 2 or source.shape[1] != data.shape[1]):
        raise ValueError(f"source must have shape (m, {data.shape[1]}), got {tuple(source.shape)}")
    names = check_labels(labels, tuple(label_names), int(data.shape[0]))
    group, device = distributed.start_group(config.device)
    flow = _initial_flow(data, path, model, source, coupling, resume, config.normalize, len(names), image,
                         seed_generator(config.seed)).to(device)
    flow.labels = names
    flow.info.update(dataset=dataset, dataset_hash=dataset_hash, n_train=int(data.shape[0]), train=config.to_dict())
    if names:
        assert labels is not None
        flow.info["class_counts"] = torch.bincount(labels.long(), minlength=len(names)).tolist()
    if group.active:
        flow.info["distributed"] = {"world_size": group.world_size, "backend": group.backend,
                                    "global_batch_size": group.world_size * config.batch_size}
    return _fit(flow, data, config, device, callback, None if labels is None else labels.long(), group)


def seed_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`: a training's network initialisation draws from one of these (the same
    on every rank), never from torch's global generator, which other trainings in the process share."""
    return torch.Generator(device="cpu").manual_seed(seed)


def _flat_images(data: DataLike, image: ImageSpec | None) -> tuple[DataLike, ImageSpec | None]:
    """Images [N, C, H, W] as flat rows [N, C*H*W] with their spec (inferred unless given); other data as is."""
    if data.ndim == 4:
        array = data.numpy() if isinstance(data, Tensor) else data
        spec = image or ImageSpec.infer(np.asarray(array))
        if spec.shape != tuple(data.shape[1:]):
            raise ValueError(f"image spec of shape {spec.shape} given for images of shape {tuple(data.shape[1:])}")
        return data.reshape(data.shape[0], -1), spec
    if image is not None and (data.ndim != 2 or data.shape[1] != image.dim):
        raise ValueError(f"flat images of shape {image.shape} need rows of {image.dim} values, got "
                         f"{tuple(data.shape)}")
    return data, image


def _initial_flow(
    data: DataLike,
    path: str | AffinePath,
    model: NetConfig | None,
    source: Tensor | None,
    coupling: str,
    resume: FlowModel | None,
    normalize: str = "column",
    num_classes: int = 0,
    image: ImageSpec | None = None,
    generator: torch.Generator | None = None,
) -> FlowModel:
    """A fresh FlowModel fitted to `data` (its network's initial weights drawn from `generator`), or a copy of
    `resume` to continue training.

    Constant data columns are constants of the model (with a Gaussian source): the network sees only the
    varying ones, so `model.dim` may be the data's dimension or that of its varying columns. Images keep
    every pixel (a blank corner is part of the image) and map their pixel range to [-1, 1].
    """
    if resume is not None:
        if resume.dim != data.shape[1]:
            raise ValueError(f"cannot resume a {resume.dim}-d model on {data.shape[1]}-d data")
        if resume.net.config.num_classes != num_classes:
            raise ValueError(f"cannot resume a model of {resume.net.config.num_classes} classes with "
                             f"{num_classes} classes of labels")
        if (resume.image is None) != (image is None) or (image is not None and resume.image is not None
                                                         and resume.image.shape != image.shape):
            raise ValueError(f"cannot resume a model of {'images' if resume.image else 'vectors'} on "
                             f"{'images of shape ' + str(image.shape) if image else 'vectors'}")
        flow = copy.deepcopy(resume)
        flow.coupling = coupling
        return flow
    rows = fit_rows(data)
    if image is not None:
        normalizer = image.normalizer()
    else:
        normalizer = Normalizer.fit(rows, per_column=normalize == "column", keep_constant=source is not None)
    built = path if isinstance(path, AffinePath) else path_for_data(path, normalizer.encode(rows.float()))
    config = model or (UNetConfig(*image.shape) if image is not None else MLPConfig(dim=normalizer.dim))
    if config.dim not in (data.shape[1], normalizer.dim):
        raise ValueError(f"model dim {config.dim} does not match data dim {data.shape[1]}")
    if isinstance(config, UNetConfig) and (image is None or config.shape != image.shape):
        raise ValueError(f"a U-Net of image shape {config.shape} needs images of that shape, got "
                         f"{'flat rows' if image is None else image.shape}")
    net = build_net(sized(config, normalizer.dim, num_classes), generator)
    return FlowModel(net=net, path=built, normalizer=normalizer, source=source, coupling=coupling, image=image)


def _optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam(W) with the fused kernel (one op for all parameters; ~3x less optimiser time than the default
    per-parameter loop for these small MLPs), or torch's default where a device has no fused kernel."""
    opt_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    try:
        return opt_class(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return opt_class(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def check_labels(labels: Tensor | None, names: tuple[str, ...], n: int) -> tuple[str, ...]:
    """The class names, after checking that labels and names fit each other and the data (ValueError)."""
    if labels is None:
        if names:
            raise ValueError("label_names given without labels")
        return ()
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), one per data row, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if not names:
        raise ValueError("labels need their class names (label_names)")
    if len(set(names)) != len(names) or not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"label names must be distinct non-empty strings, got {names}")
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"a conditional model needs between 2 and {MAX_CLASSES} classes, got {len(names)}")
    if int(labels.min()) < 0 or int(labels.max()) >= len(names):
        raise ValueError(f"labels must lie in [0, {len(names)}), got {int(labels.min())}..{int(labels.max())}")
    return names


def fit_pairs(flow: FlowModel, x0: Tensor, x1: Tensor, *, config: TrainConfig = TrainConfig(),
              callback: Callback | None = None, labels: Tensor | None = None) -> TrainResult:
    """Train `flow` (its net, path and normalisation as given) by CFM on fixed pairs: row i of x0 [N, D] goes
    with row i of x1 (data coordinates), and every batch takes both by the same indices (a deterministic
    coupling such as reflow's: the pairs are neither re-drawn nor re-coupled). `labels` [N] go with the rows."""
    if x0.dim() != 2 or x0.shape != x1.shape or x0.shape[0] < 2 or x0.shape[1] != flow.dim:
        raise ValueError(f"pairs must be two arrays of the same shape (n >= 2, {flow.dim}), got "
                         f"{tuple(x0.shape)} and {tuple(x1.shape)}")
    check_labels(labels, flow.labels if labels is not None else (), int(x1.shape[0]))
    group, device = distributed.start_group(config.device)
    flow = flow.to(device)
    flow.info.update(n_train=int(x1.shape[0]), train=config.to_dict())
    return _fit(flow, x1, config, device, callback, None if labels is None else labels.long(), group,
                paired_source=x0)


def _fit(
    flow: FlowModel, data: DataLike, config: TrainConfig, device: torch.device, callback: Callback | None,
    labels: Tensor | None = None, group: Group = distributed.SINGLE, paired_source: Tensor | None = None,
) -> TrainResult:
    """The optimisation loop; the EMA weights are the result.

    The EMA absorbs a step's weights only after their loss was seen finite (with check_every = K > 1: it is
    rolled back to the last checked block boundary), so on a NaN/inf loss the EMA holds the last good weights.
    Randomness (data indices, source noise, times) is drawn in blocks of RANDOM_BLOCK steps from one seeded
    generator on the training device (CPU: the same draws as ever), as are a U-Net's dropout masks, never from
    torch's global one; rank r of a distributed run seeds it with seed + r * RANK_SEED_STRIDE. With labels, each
    batch's labels are dropped to the "no label" token with probability label_dropout.
    With `paired_source` [N, D] (data coordinates), row i is the source partner of data row i: a batch's
    sources are taken by its data indices (a fixed, index-aligned coupling; no minibatch pairing).
    """
    generator = torch.Generator(device=device if device.type == "cuda" else "cpu")
    generator.manual_seed(config.seed + group.rank * RANK_SEED_STRIDE)
    rng = generator.device
    z0_all = None if flow.source is None else flow.normalizer.encode(flow.source.to(device, torch.float32))
    rows: Rows
    if paired_source is not None:  # index-aligned pairs: rows and partners on the device, drawn by one index
        assert isinstance(data, Tensor)
        z0_all = flow.normalizer.encode(paired_source.to(device, torch.float32))
        rows = paired = DeviceRows(data, labels, flow.normalizer, config.batch_size, generator, device)
    else:
        rows = rows_for(data, labels, flow.normalizer, config.batch_size, config.seed, config.stream, group,
                        generator, device)
    net = flow.net.train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    ema_flow = replace(flow, net=ema)
    use_generator(net, generator)  # a U-Net's dropout masks: this training's draws too
    step_net: nn.Module = distributed.wrap(net, group, device)
    if config.compile_step:
        step_net = torch.compile(step_net)  # type: ignore[assignment]
    optimizer = _optimizer(net, config)
    mixed = config.autocast(device, net)
    params: list[Tensor] = list(net.parameters())
    ema_params: list[Tensor] = list(ema.parameters())
    path, batch, dim = flow.path, config.batch_size, flow.latent_dim
    result = TrainResult(model=ema_flow)
    readback = LossReadback(check_every(config.check_every, device), group, device)
    snapshot = EmaSnapshot(ema_params) if readback.every > 1 else None
    start = time.perf_counter()
    # Minibatch-OT pairs do not depend on the model: solve a block's pairs on spare cores (POT releases
    # the GIL) while this thread trains. Same pairs, same order as solving them step by step.
    minibatch = paired_source is None and flow.coupling != "independent"
    solver = ThreadPoolExecutor(min(4, os.cpu_count() or 1)) if minibatch else None
    try:
        for step in range(config.steps):
            j = step % RANDOM_BLOCK
            if j == 0:
                k = min(RANDOM_BLOCK, config.steps - step)
                if paired_source is not None:  # the partners of the drawn rows, by the same indices
                    z1s, partners, true_y = paired.paired_block(k, z0_all)
                    assert partners is not None
                    src = partners
                else:
                    z1s, true_y = rows.block(k)  # [k, batch, d] on the device (the block's first draw)
                    if z0_all is None:
                        src = torch.randn(k, batch, dim, generator=generator, device=rng).to(device)
                    else:
                        src = z0_all[torch.randint(len(z0_all), (k, batch), generator=generator,
                                                   device=rng).to(device)]
                times = (torch.rand(k, batch, generator=generator, device=rng) * path.t_max).to(device)
                if true_y is not None:
                    true_y = true_y.to(rng)
                    dropped = torch.rand(k, batch, generator=generator, device=rng) < config.label_dropout
                    ys = torch.where(dropped, net.null_label, true_y).to(device)
                if solver is not None and true_y is not None and config.pair_within_class:
                    pairs = [solver.submit(pair, src[i], z1s[i], flow.coupling, None, true_y[i].to(device),
                                           config.ot_block) for i in range(k)]
                elif solver is not None:
                    pairs = [solver.submit(pair, src[i], z1s[i], flow.coupling, None, None, config.ot_block)
                             for i in range(k)]
            lr = config.learning_rate(step)
            if lr != optimizer.param_groups[0]["lr"]:
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
            z0, z1 = pairs[j].result() if solver is not None else (src[j], z1s[j])
            t = times[j]
            sample = path.sample(z0, z1, t, generator)
            with torch.autocast(device.type, torch.bfloat16, enabled=mixed):
                loss = cfm_loss(step_net, sample.x_t, t, sample.u_t, None if labels is None else ys[j])
            readback.add(loss)
            checked = None
            if readback.every == 1:  # read before the EMA absorbs these weights: nothing to roll back
                checked = _checked(readback, step, config, result, start, snapshot, ema_params)
            with torch.no_grad():  # with K = 1 these weights gave a finite loss: let the EMA absorb them
                decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
                torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            if readback.every > 1 and readback.due(step, config.steps):
                checked = _checked(readback, step, config, result, start, snapshot, ema_params)
            if checked is not None and _report(checked, step, config, result, start, callback, group, device):
                result.stopped_early = True
                break
    finally:
        use_generator(net, None)
        if solver is not None:
            solver.shutdown(wait=False, cancel_futures=True)
    if not distributed.in_sync(ema_params, group):
        raise RuntimeError("distributed training: the ranks' weights differ at the end (a broken all-reduce?)")
    return _finish(result, start)


def _finish(result: TrainResult, start: float) -> TrainResult:
    """Stamp the training time and the steps the EMA has absorbed (also into a diverged run's last good model)."""
    result.seconds = time.perf_counter() - start
    result.model.info["steps_done"] = int(result.model.info.get("steps_done", 0)) + len(result.losses)
    result.model.info["train_seconds"] = round(result.seconds, 2)
    return result


def _checked(readback: LossReadback, step: int, config: TrainConfig, result: TrainResult, start: float,
             snapshot: EmaSnapshot | None, ema_params: list[Tensor]) -> Checked:
    """Read the pending losses; on a non-finite one (any rank) roll the EMA back to the last checked block
    boundary and raise TrainingDiverged on every rank; else mark this boundary as good."""
    checked = readback.read()
    if checked.finite:
        if snapshot is not None:
            snapshot.take(ema_params)
        return checked
    if snapshot is not None:
        snapshot.restore(ema_params)
    _finish(result, start)
    bad_step = step + 2 - len(checked.losses) + checked.first_bad()
    where = f" on rank {', '.join(map(str, checked.bad_ranks))}" if readback.group.active else ""
    kept = "the last good weights are kept" if snapshot is None else \
        f"the weights of step {step + 1 - len(checked.losses)} (the last checked block) are kept"
    raise TrainingDiverged(
        f"training stopped at step {bad_step}: the loss became {checked.losses[checked.first_bad()]}{where} "
        f"(learning rate {config.lr:g} too high?); {kept}",
        result,
    )


def _report(checked: Checked, step: int, config: TrainConfig, result: TrainResult, start: float,
            callback: Callback | None, group: Group, device: torch.device) -> bool:
    """Record a block's losses and show them to the callback (rank 0); whether training stops (all ranks agree)."""
    result.losses.extend(checked.losses)
    stop = False
    if callback is not None and group.is_main:
        seconds = time.perf_counter() - start
        first = step + 2 - len(checked.losses)
        for i, loss_value in enumerate(checked.losses):
            info = StepInfo(first + i, config.steps, loss_value, config.learning_rate(first + i - 1), seconds)
            if callback(info, result.model):
                stop = True
                break
    return distributed.agree(stop, group, device)
