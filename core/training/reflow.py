"""Reflow (Liu, Gong, Liu, "Flow Straight and Fast", ICLR 2023): straighten a trained flow by training again
on its own (noise, sample) pairs.

A teacher's ODE maps each source point x0 to x1 = teacher(x0): a deterministic coupling of the source and the
teacher's samples. CFM on exactly those pairs with the straight interpolant x_t = (1 - t) x0 + t x1 (target
x1 - x0) gives a student whose paths are straighter (rectified), so a few Euler steps land where the teacher
needed many; k rounds give the k-rectified flow.

Coordinates: pairs are drawn in the teacher's normalised coordinates (fresh N(0, prior_std^2 I) noise, or the
teacher's stored source) and the student keeps the teacher's normalisation, rescaled by prior_std so that its
own prior N(0, I) is the teacher's prior: student and teacher sample from the same noise. Pairs are drawn in
chunks of PAIR_CHUNK, chunk c from its own generator seeded by (seed, c), so any chunk can be regenerated
alone and the pairs depend only on (teacher, solver, seed, n).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ..flow.model import FlowModel
from ..maths.couplings import REFLOW
from ..maths.normalizer import Normalizer
from ..maths.paths import make_path
from ..nets.models import MLPConfig, build_net, sized
from ..solver.sampling import SolverConfig, integrate
from .loop import StepInfo, TrainConfig, TrainResult, fit_pairs, seed_generator

__all__ = ["PAIR_CHUNK", "PAIR_SOLVER", "ReflowPairs", "ReflowProgress", "ReflowResult", "pair_chunk", "reflow",
           "reflow_pairs", "reflow_round", "student_of"]

#: Pairs integrated at once; part of the pairs' definition (an adaptive solver's steps depend on its batch).
PAIR_CHUNK = 4096
#: The default solver of the pairs: dopri5 at atol = rtol = 1e-5 (the solver of record for NFE).
PAIR_SOLVER = SolverConfig(method="dopri5", atol=1e-5, rtol=1e-5)


@dataclass(frozen=True)
class ReflowPairs:
    """A reflow coupling: row i of x0 is mapped by the teacher's ODE to row i of x1 (data coordinates).

    Attributes:
        x0: source points [n, D].
        x1: the teacher's end points from them [n, D].
        labels: the class each pair was drawn for [n] (conditional teachers), else None.
        seed, solver, guidance: how they were drawn.
        nfe: the solver's velocity evaluations for one chunk (the largest).
    """

    x0: Tensor
    x1: Tensor
    labels: Tensor | None
    seed: int
    solver: SolverConfig
    guidance: float = 0.0
    nfe: int = 0


@dataclass(frozen=True)
class ReflowProgress:
    """What a reflow callback sees: the round, the stage ("pairs" or "train") and how far it is."""

    round: int
    rounds: int
    stage: str
    done: int
    total: int
    loss: float | None = None


#: Called with the progress; return True to stop (during training: the student so far is kept).
ReflowCallback = Callable[[ReflowProgress], "bool | None"]


@dataclass
class ReflowResult:
    """The student of the last round and each round's training result and pairs' NFE."""

    model: FlowModel
    rounds: list[TrainResult] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def _chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """The generator of chunk `chunk`: seeded by (seed, chunk) through numpy's SeedSequence (no collisions)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(chunk)]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device="cpu").manual_seed(int(state[0] >> np.uint64(1)))


def _class_weights(teacher: FlowModel) -> Tensor:
    """The share of each class among a conditional teacher's training points (uniform if not recorded)."""
    counts = teacher.info.get("class_counts") or [1] * len(teacher.labels)
    weights = torch.tensor(counts, dtype=torch.float64)
    return weights / weights.sum()


@torch.no_grad()
def pair_chunk(teacher: FlowModel, n: int, chunk: int, *, solver: SolverConfig = PAIR_SOLVER, seed: int = 0,
               guidance: float = 0.0) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """Chunk `chunk` of the reflow pairs of `n` in all: (z0, z1, labels, nfe) in the teacher's normalised
    coordinates. Noise (or source indices) and labels come from the chunk's own generator; a conditional
    teacher's pairs are integrated per class with guidance scale `guidance`."""
    start = chunk * PAIR_CHUNK
    size = min(PAIR_CHUNK, n - start)
    if size <= 0:
        raise ValueError(f"chunk {chunk} is past the end of {n} pairs")
    generator = _chunk_generator(seed, chunk)
    device = teacher.device
    if teacher.source is None:
        z0 = torch.randn(size, teacher.latent_dim, generator=generator).to(device) * teacher.path.prior_std
    else:
        index = torch.randint(len(teacher.source), (size,), generator=generator).to(device)
        z0 = teacher.normalizer.encode(teacher.source[index].to(device, torch.float32))
    labels = None
    if teacher.conditional:
        labels = torch.multinomial(_class_weights(teacher), size, replacement=True, generator=generator)
    was_training = teacher.net.training
    teacher.net.eval()
    try:
        if labels is None:
            result = integrate(teacher.latent_velocity, z0, t1=teacher.path.t_max, solver=solver)
            return z0, result.samples, None, result.nfe
        z1, nfe = torch.empty_like(z0), 0
        for y in torch.unique(labels).tolist():
            rows = (labels == y).nonzero().squeeze(1).to(device)
            result = integrate(teacher.guided_latent(int(y), guidance), z0[rows], t1=teacher.path.t_max, solver=solver)
            z1[rows] = result.samples
            nfe = max(nfe, result.nfe)
        return z0, z1, labels, nfe
    finally:
        teacher.net.train(was_training)


def reflow_pairs(teacher: FlowModel, n: int, *, solver: SolverConfig = PAIR_SOLVER, seed: int = 0,
                 guidance: float = 0.0, callback: Callable[[int, int], object] | None = None) -> ReflowPairs:
    """The reflow coupling of `teacher`: n pairs (x0, x1 = teacher's ODE from x0), reproducible from `seed`.

    `callback(done, n)` is called after each chunk (progress). Same teacher, solver, seed and n give identical
    pairs; another seed gives other noise.
    """
    if n < 2:
        raise ValueError(f"reflow needs at least 2 pairs, got {n}")
    if guidance != 0.0 and not teacher.conditional:
        raise ValueError("guidance needs a conditional teacher")
    if not np.isfinite(guidance):
        raise ValueError(f"guidance must be finite, got {guidance}")
    z0s, z1s, ys, nfe = [], [], [], 0
    for chunk in range((n + PAIR_CHUNK - 1) // PAIR_CHUNK):
        z0, z1, labels, chunk_nfe = pair_chunk(teacher, n, chunk, solver=solver, seed=seed, guidance=guidance)
        z0s.append(z0)
        z1s.append(z1)
        if labels is not None:
            ys.append(labels)
        nfe = max(nfe, chunk_nfe)
        if callback is not None:
            callback(min(n, (chunk + 1) * PAIR_CHUNK), n)
    x0 = teacher.normalizer.decode(torch.cat(z0s))
    x1 = teacher.normalizer.decode(torch.cat(z1s))
    if not bool(torch.isfinite(x1).all()):
        raise ValueError("the teacher's ODE gave non-finite end points; it cannot be reflowed")
    return ReflowPairs(x0=x0, x1=x1, labels=torch.cat(ys) if ys else None, seed=seed, solver=solver,
                       guidance=float(guidance), nfe=nfe)


def _student_normalizer(teacher: FlowModel) -> Normalizer:
    """The teacher's normalisation, with the scale of its varying columns times the prior's std (Gaussian
    source): the teacher's prior N(0, prior_std^2 I) is then the student's N(0, I), the same noise."""
    norm = teacher.normalizer
    std = teacher.path.prior_std if teacher.source is None else 1.0
    if std == 1.0:
        return norm
    constant = set(norm.constant)
    scale = tuple(s if j in constant else s * std for j, s in enumerate(norm.scale))
    return Normalizer(mean=norm.mean, scale=scale, constant=norm.constant)


def student_of(teacher: FlowModel, model: MLPConfig | None = None, *, warm_start: bool = True,
               seed: int = 0) -> FlowModel:
    """A student for `teacher`: the straight interpolant (OT path, sigma_min = 0; with a stored source, the
    teacher's interpolant noise, else none), the teacher's
    prior and source, labels and data sample; its network a copy of the teacher's (`warm_start`, where the
    coordinates agree and no other architecture is asked for) or a fresh one of `model` (default: the
    teacher's architecture), its initial weights drawn from a generator seeded with `seed`."""
    normalizer = _student_normalizer(teacher)
    same = model is None or model == teacher.net.config
    if warm_start and same and normalizer == teacher.normalizer:
        net = copy.deepcopy(teacher.net).cpu()
    else:
        net = build_net(sized(model or teacher.net.config, teacher.latent_dim, len(teacher.labels)),
                        seed_generator(seed))
    keep = ("dataset", "dataset_hash", "columns", "label_column", "class_counts")
    # a stored source keeps the teacher's interpolant noise (I-CFM's sigma): the exact fields over pairs need it
    noise = teacher.path.noise_std if teacher.source is not None else 0.0
    return FlowModel(net=net, path=make_path("ot", sigma_min=0.0, noise_std=noise), normalizer=normalizer,
                     source=None if teacher.source is None else teacher.source.detach().cpu().clone(),
                     coupling=REFLOW, info={k: teacher.info[k] for k in keep if k in teacher.info},
                     data=teacher.data, labels=teacher.labels, data_labels=teacher.data_labels, image=teacher.image)


def _teacher_name(teacher: FlowModel) -> str:
    """The teacher's zoo name, or its own teacher's name and round, or 'model'."""
    return str(teacher.info.get("zoo_name") or teacher.info.get("name") or "model")


def reflow_round(teacher: FlowModel, pairs: ReflowPairs, *, config: TrainConfig = TrainConfig(),
                 model: MLPConfig | None = None, warm_start: bool = True, teacher_name: str | None = None,
                 callback: Callable[[StepInfo, FlowModel], bool | None] | None = None) -> TrainResult:
    """One reflow round: a student of `teacher` trained by CFM on `pairs`, index-aligned, with the straight
    interpolant. Its info records the teacher's name, the pairs' solver, seed, count and guidance, and the round
    (the teacher's round + 1)."""
    student = student_of(teacher, model, warm_start=warm_start, seed=config.seed)
    previous = teacher.info.get("reflow") or {}
    student.info["reflow"] = {
        "teacher": teacher_name or _teacher_name(teacher),
        "round": int(previous.get("round", 0)) + 1,
        "pairs": int(len(pairs.x0)),
        "seed": pairs.seed,
        "solver": asdict(pairs.solver),
        "guidance": pairs.guidance,
        "teacher_path": teacher.path.config(),
        "teacher_coupling": teacher.coupling,
        "pairs_nfe": pairs.nfe,
        **({"first_teacher": previous.get("first_teacher", previous.get("teacher"))} if previous else {}),
    }
    return fit_pairs(student, pairs.x0, pairs.x1, config=config, callback=callback, labels=pairs.labels)


def reflow(teacher: FlowModel, *, pairs: int = 50000, rounds: int = 1, solver: SolverConfig = PAIR_SOLVER,
           seed: int = 0, config: TrainConfig = TrainConfig(), model: MLPConfig | None = None,
           warm_start: bool = True, guidance: float = 0.0, teacher_name: str | None = None,
           callback: ReflowCallback | None = None) -> ReflowResult:
    """k-rectified flow: `rounds` rounds of reflow, each student the next round's teacher.

    Round r (0-based) draws its pairs with seed + r and trains with config's seed + r. A conditional teacher's
    pairs are drawn per class with guidance `guidance`, and its students keep the labels (and are sampled at
    guidance 0 to follow the guided teacher). `callback` sees the progress; True stops (after pairs: no
    student; during training: the student so far).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    start = time.perf_counter()
    result = ReflowResult(model=teacher)
    current, name = teacher, teacher_name or _teacher_name(teacher)
    for r in range(rounds):
        def on_pairs(done: int, total: int, r: int = r) -> object:
            return callback(ReflowProgress(r + 1, rounds, "pairs", done, total)) if callback else None

        drawn = reflow_pairs(current, pairs, solver=solver, seed=seed + r, guidance=guidance if r == 0 else 0.0,
                             callback=on_pairs)

        def on_step(info: StepInfo, flow: FlowModel, r: int = r) -> bool | None:
            if callback is None:
                return None
            return bool(callback(ReflowProgress(r + 1, rounds, "train", info.step, info.steps, info.loss)))

        trained = reflow_round(current, drawn, config=replace(config, seed=config.seed + r), model=model,
                               warm_start=warm_start, teacher_name=name if r == 0 else None, callback=on_step)
        result.rounds.append(trained)
        current = trained.model
        current.info["name"] = f"{name} reflow {r + 1}"
        if trained.stopped_early:
            result.stopped_early = True
            break
    result.model = current
    result.seconds = time.perf_counter() - start
    return result





