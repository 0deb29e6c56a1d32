"""Toy 2-D datasets of FFJORD (Grathwohl et al., ICLR 2019), the usual benchmarks of flow papers.

Written with numpy only (no scikit-learn) so that a name, a size and a seed fully determine the data on
any machine: every generator draws from one `numpy.random.Generator(PCG64(seed))`. The formulas follow
FFJORD's `toy_data.py` and the scikit-learn generators it calls (`make_moons`, `make_circles`,
`make_swiss_roll`); see docs/design.md, "Toy datasets". One change to them: every point is drawn independently
(its part and its position on it), where FFJORD and sklearn space angles evenly and give every part the
same count. The distributions are the same; but two stratified draws match each other much better than
independent samples do, so the W2 floor measured between them was out of reach of any sampler (2.0x on
rings, 1.8x on moons, 1.7x on circles). Any prefix of a dataset is a fair i.i.d. sample of it.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import tables
from .loader import generated_columns

#: A toy generator: (rng, n) -> (points [n, 2], the part each point was drawn from [n], or None).
_Generator = Callable[[np.random.Generator, int], "tuple[np.ndarray, np.ndarray | None]"]


__all__ = ["ALL_DATASETS", "DATASETS", "TOY_LABELS", "Labelled", "dataset_columns", "dataset_labels", "fresh_draws",
           "held_out_labelled", "make_labelled",
           "RINGS_RADII", "dataset_hash", "distance_to_rings", "make_circles", "make_dataset", "make_moons",
           "make_swiss_roll"]


def _polar(radius: np.ndarray | float, angle: np.ndarray) -> np.ndarray:
    """Points radius (cos angle, sin angle), [len(angle), 2]."""
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _jitter(rng: np.random.Generator, x: np.ndarray, noise: float) -> np.ndarray:
    """Add N(0, noise^2) to every coordinate."""
    return x + noise * rng.standard_normal(x.shape)


def _concentric(rng: np.random.Generator, n: int, radii: tuple[float, ...],
                noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Each point on one of the concentric circles `radii`, picked uniformly, at a uniform angle, + noise;
    with the index of its circle."""
    ring = rng.integers(0, len(radii), size=n)
    return _jitter(rng, _polar(np.asarray(radii)[ring], 2.0 * np.pi * rng.random(n)), noise), ring


def make_moons(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    """sklearn's `make_moons` distribution: upper unit half circle, or a lower one shifted by (1, -0.5).

    Each point picks its moon and its angle independently (sklearn spaces the angles evenly and splits
    n in halves: a stratified sample, whose two draws match each other far better than independent
    samples do, which made W2's floor unreachable for any sampler).

    Args:
        rng: source of randomness.
        n: number of points.
        noise: std of the Gaussian noise added to every coordinate.

    Returns:
        float64 array [n, 2].
    """
    return _moons_parts(rng, n, noise)[0]


def _moons_parts(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """make_moons' points and each one's moon (0 upper, 1 lower)."""
    inner = rng.integers(0, 2, size=n).astype(bool)
    angle = np.pi * rng.random(n)
    arc = _polar(1.0, angle)
    x = np.where(inner[:, None], np.array([1.0, 0.5]) - arc, arc)
    return _jitter(rng, x, noise), inner.astype(np.int64)


def make_circles(rng: np.random.Generator, n: int, factor: float, noise: float) -> np.ndarray:
    """sklearn's `make_circles` distribution: a unit circle or a concentric one of radius `factor`.

    Each point picks its circle and angle independently (see `make_moons` for why not evenly spaced).

    Args:
        rng: source of randomness.
        n: number of points.
        factor: radius of the inner circle.
        noise: std of the Gaussian noise added to every coordinate.

    Returns:
        float64 array [n, 2].
    """
    return _concentric(rng, n, (1.0, factor), noise)[0]


def make_swiss_roll(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    """The (x, z) plane of sklearn's `make_swiss_roll`: t (cos t, sin t), t ~ 1.5 pi (1 + 2U), + noise.

    The roll's height y = 21 U is not drawn: FFJORD keeps only columns 0 and 2.

    Args:
        rng: source of randomness.
        n: number of points.
        noise: std of the Gaussian noise added to every coordinate.

    Returns:
        float64 array [n, 2].
    """
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    return _jitter(rng, _polar(t, t), noise)


def _swissroll(rng: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
    """FFJORD: make_swiss_roll(noise=1.0)[:, [0, 2]] / 5 (one roll: no parts)."""
    return make_swiss_roll(rng, n, noise=1.0) / 5.0, None


def _circles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: make_circles(factor=.5, noise=.08) * 3; parts: outer, inner."""
    x, ring = _concentric(rng, n, (1.0, 0.5), 0.08)
    return x * 3.0, ring


#: Radii of the rings dataset's circles: FFJORD's 1, .75, .5, .25, times 3.
RINGS_RADII = (3.0, 2.25, 1.5, 0.75)


def _rings(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: circles of radius 1, .75, .5, .25, each point on one picked uniformly, * 3, + N(0, .08^2)."""
    return _concentric(rng, n, RINGS_RADII, 0.08)


def distance_to_rings(points: np.ndarray) -> np.ndarray:
    """Distance of each point [n, 2] to the nearest circle of the rings dataset: how sharply a model draws
    them (the data's noise puts 1.5% of its points further than 0.2; a blurred disk about 45%)."""
    radius = np.linalg.norm(points, axis=1)
    return np.abs(radius[:, None] - np.asarray(RINGS_RADII)).min(axis=1)


def _moons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: make_moons(noise=.1) * 2 + [-1, -.2]."""
    x, moon = _moons_parts(rng, n, noise=0.1)
    return x * 2.0 + np.array([-1.0, -0.2]), moon


def _eight_gaussians(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: centres 4 (cos k pi/4, sin k pi/4) picked uniformly, + .5 N(0, I), all / 1.414."""
    angle = np.arange(8) * np.pi / 4.0
    centres = 4.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    component = rng.integers(0, 8, size=n)
    x = centres[component] + 0.5 * rng.standard_normal((n, 2))
    return x / 1.414, component


def _pinwheel(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: 5 arms; radial std .3, tangential std .1, feature0 += 1, bent by .25 exp(feature0), * 2.

    FFJORD's `einsum("ti,tij->tj", features, R)` with R = [[cos, -sin], [sin, cos]] is written out. Each
    point picks its arm uniformly (FFJORD gives every arm n/5 points: a stratified sample).
    """
    arm = rng.integers(0, 5, size=n)
    f = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    f[:, 0] += 1.0
    angle = 2.0 * np.pi * arm / 5.0 + 0.25 * np.exp(f[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    x = np.stack([f[:, 0] * cos + f[:, 1] * sin, -f[:, 0] * sin + f[:, 1] * cos], axis=1)
    return 2.0 * x, arm


def _two_spirals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: r = sqrt(U) 540 2pi/360, (-cos(r) r + .5U, sin(r) r + .5U) or its negation, / 3, + .1 N.

    Each point picks its spiral independently (FFJORD mirrors the first half's points onto the second).
    """
    r = np.sqrt(rng.random(n)) * 540.0 * (2.0 * np.pi) / 360.0
    arm = np.stack([-np.cos(r) * r + 0.5 * rng.random(n), np.sin(r) * r + 0.5 * rng.random(n)], axis=1)
    second = rng.integers(0, 2, size=n)
    sign = np.where(second == 1, -1.0, 1.0)
    return _jitter(rng, sign[:, None] * arm / 3.0, 0.1), second


def _checkerboard(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FFJORD: x1 = 4U - 2, x2 = U - 2 randint{0, 1} + (floor(x1) mod 2), * 2 (8 squares of side 2).

    Parts: the squares' two interleaved sets, by the parity of their column (floor(x1) mod 2).
    """
    x1 = 4.0 * rng.random(n) - 2.0
    parity = np.floor(x1) % 2.0
    x2 = rng.random(n) - 2.0 * rng.integers(0, 2, size=n) + parity
    return 2.0 * np.stack([x1, x2], axis=1), parity.astype(np.int64)


_GENERATORS: dict[str, _Generator] = {
    "swissroll": _swissroll,
    "circles": _circles,
    "rings": _rings,
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "pinwheel": _pinwheel,
    "2spirals": _two_spirals,
    "checkerboard": _checkerboard,
}

#: The 2-D toy datasets, in a stable order (for menus, the zoo and the CLI).
DATASETS: tuple[str, ...] = tuple(_GENERATORS)
#: Every name `make_dataset` accepts: the 2-D toys and the tables of `flowscope.tables` (more columns).
ALL_DATASETS: tuple[str, ...] = DATASETS + tables.TABLES


#: The natural labels of the toys: the part each point is drawn from (swissroll has none).
TOY_LABELS: dict[str, tuple[str, ...]] = {
    "circles": ("outer", "inner"),
    "rings": tuple(f"radius {r:g}" for r in RINGS_RADII),
    "moons": ("upper", "lower"),
    "8gaussians": tuple(f"component {k}" for k in range(8)),
    "pinwheel": tuple(f"arm {k}" for k in range(5)),
    "2spirals": ("first", "second"),
    "checkerboard": ("even columns", "odd columns"),
}


@dataclass(frozen=True, eq=False)
class Labelled:
    """Points with a class each: x [n, D] float32, y [n] int64 indices into `names`."""

    x: np.ndarray
    y: np.ndarray
    names: tuple[str, ...]


def dataset_labels(name: str) -> tuple[str, ...]:
    """The class names of a built-in dataset's natural labels; () when it has none (swissroll, engel)."""
    if name in _GENERATORS:
        return TOY_LABELS.get(name, ())
    return tables.table_info(name).labels


def make_labelled(name: str, n: int, seed: int = 0) -> Labelled:
    """`make_dataset`'s points (the same, for the same name, n and seed) with their natural labels.

    Raises ValueError for a dataset without labels (swissroll, engel).
    """
    names = dataset_labels(name)
    if not names:
        labelled = ", ".join(d for d in ALL_DATASETS if dataset_labels(d))
        raise ValueError(f"dataset {name!r} has no natural labels; datasets with labels: {labelled}")
    x = make_dataset(name, n, seed)
    if name in _GENERATORS:
        _, parts = _GENERATORS[name](np.random.Generator(np.random.PCG64(seed)), n)
        assert parts is not None
        y = parts
    else:
        y = tables.load_labels(name, n, seed)
    return Labelled(x=x, y=np.asarray(y, dtype=np.int64), names=names)


def fresh_draws(name: str) -> bool:
    """Whether `make_dataset(name, n, seed)` gives new independent points for each seed (the toys, mixture8),
    or the same fixed rows of a real table in another order (then judge against its rows, not a sampler)."""
    return name not in tables.TABLES or tables.table_info(name).fresh_draws


def held_out_labelled(name: str, n: int, seed: int, training: Labelled) -> Labelled:
    """Labelled points to judge a conditional model of `name` against: a fresh draw (seed + 10,001, apart from
    training data), or, for a real table with no fresh draws, its training rows themselves."""
    return make_labelled(name, n, seed + 10_001) if fresh_draws(name) else training


def dataset_columns(name: str) -> tuple[str, ...]:
    """The column names of a built-in dataset (x, y for the 2-D toys: `loader.generated_columns`)."""
    return generated_columns(2) if name in _GENERATORS else tables.table_info(name).columns


def make_dataset(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Draw n points of a built-in dataset, reproducibly, so that a name and a seed identify the data.

    Args:
        name: one of `ALL_DATASETS` (a 2-D toy or a table of `flowscope.tables`).
        n: number of points, at least 1; exactly n rows are returned, except for a real table, which
            returns min(n, its rows) rows.
        seed: seed of the `numpy.random.Generator(PCG64(seed))` that all draws come from (>= 0).

    Returns:
        float32 array [n, D], rows in random order.

    Raises:
        ValueError: unknown name (the message lists the valid ones), n < 1 or a negative seed.
        TypeError: n or seed is not an integer.
    """
    generator = _GENERATORS.get(name)
    if generator is None and name not in tables.TABLES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(ALL_DATASETS)}")
    n, seed = operator.index(n), operator.index(seed)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if generator is None:
        return tables.load(name, n, seed).astype(np.float32)
    x, _ = generator(np.random.Generator(np.random.PCG64(seed)), n)
    return x.astype(np.float32)


def dataset_hash(x: np.ndarray) -> str:
    """Short fingerprint of a data array, stored with a model to record which data it was trained on.

    Args:
        x: array of any numeric dtype; it is hashed as C-contiguous float32, so a float64 copy of the same
            float32 data gets the same hash.

    Returns:
        the first 16 hex digits of sha256 over the shape and the float32 bytes.
    """
    arr = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.sha256(f"float32{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()[:16]
