"""Typed quality reports: what `report.evaluate`, `report.evaluate_classes` and `image_quality.evaluate_images`
return, what a model file and the zoo's manifest store, and the rows that the CLI prints and the explorer shows.

Each report is a frozen dataclass with `to_dict()` (the full JSON form, as `flowscope eval` prints it) and
`from_dict()` (which reads that form and the summary that model files store, including files written before
these types existed). `stored()` gives that summary, `rows()` the display rows and `headline()` one figure
with its yardstick; no caller picks dict keys or parses text. Standard library only (no torch), so a reader
of a manifest or a model's metadata needs nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["DEQUANTISATION", "ENERGY_NOTE", "ClassReport", "ClassesReport", "ImageReport", "ImageSamples",
           "QualityReport", "Row", "SampleQuality", "format_rows", "stored_report"]

#: What `energy_distance` in a report is: an unbiased estimate, so it can read a little below 0 for equal laws.
ENERGY_NOTE = ("squared energy distance, unbiased U-statistic estimate: about 0 (and possibly slightly negative) "
               "when samples and data have the same law")
#: How `image_quality.bits_per_dim` dequantises, for reports.
DEQUANTISATION = ("uniform dequantisation: each pixel value x of L levels, spacing b, is replaced by x + u, "
                  "u ~ U(-b/2, b/2), so that -log2 p(x + u) / D bounds the model's discrete NLL in bits per "
                  "dimension from above (Theis et al. 2016); Hutchinson's divergence estimator, 1 probe")
#: Decimals of the figures that a model file stores (`stored()`): W2, its floor and path figures to 5, ratios,
#: NLL and accuracies to 4.
_DIGITS = {"w2": 5, "w2_floor": 5, "w2_ratio": 4, "straightness": 5, "path_energy": 5, "nll": 4}
_SUMMARY_DIGITS = 4


class Row(NamedTuple):
    """One display row of a report: what the figure is, its value as shown, and its yardstick or how it was got."""

    label: str
    value: str
    note: str = ""


def format_rows(rows: Iterable[Row]) -> str:
    """Rows as aligned plain-text lines (label, value, note), as the CLI prints them."""
    rows = list(rows)
    if not rows:
        return ""
    label = max(len(r.label) for r in rows)
    value = max(len(r.value) for r in rows)
    return "\n".join(f"  {r.label:<{label}}  {r.value:>{value}}  {r.note}".rstrip() for r in rows)


def _w(w: float) -> str:
    """A guidance scale as keys and labels write it: 0, 1, 2.5."""
    return f"{w:g}"


def _by_guidance(data: Mapping[str, Any], prefix: str) -> dict[float, float]:
    """The figures stored as `<prefix>_w<w>` keys, by guidance scale w."""
    found = {}
    for key, value in data.items():
        if key.startswith(f"{prefix}_w") and value is not None:
            try:
                found[float(key.removeprefix(f"{prefix}_w"))] = float(value)
            except ValueError:
                continue
    return dict(sorted(found.items()))


def _opt(data: Mapping[str, Any], key: str) -> float | None:
    """A stored figure as a float, or None where it is missing."""
    value = data.get(key)
    return None if value is None else float(value)


def _round(value: float | None, digits: int) -> float | None:
    """A figure rounded for storage (None stays None)."""
    return None if value is None else round(float(value), digits)


def _ratio_row(label: str, ratio: float | None, figure: str, value: float, floor: float | None,
               yardstick: str) -> Row:
    """A figure against its floor: the ratio as value, both figures and what the floor is in the note."""
    if floor is None:
        return Row(label.split(" / ")[0], f"{value:.3f}", f"no floor: {yardstick}")
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    return Row(label, shown, f"{figure} {value:.3f}, floor {floor:.3f} ({yardstick})")


@dataclass(frozen=True)
class SampleQuality:
    """W2 of samples to the data (mean over `draws` draws of n points) and its floor, the W2 between two draws of the
    data themselves (a perfect sampler's score; None where the data allow no second draw)."""

    w2: float
    w2_floor: float | None
    n: int
    draws: int

    @property
    def w2_ratio(self) -> float | None:
        """W2 / floor (near 1: as close to the data as a fresh draw of the data itself), or None without a floor."""
        return None if not self.w2_floor else self.w2 / self.w2_floor


@dataclass(frozen=True)
class QualityReport:
    """A vector model's figures against its data (`report.evaluate`), or the summary a model file stores.

    W2 (mean over `draws` draws of n points) with its floor (the W2 of two draws of the data: a perfect sampler's
    score) and their ratio; the NFE of `solver`; MMD, energy distance and per-column W1 (first draw);
    straightness and path energy of the trajectories; the held-out NLL (nats per point) with how its divergence
    was computed. A conditional model's summary adds its worst class's label accuracy by guidance scale and its
    worst class's W2 / floor (`ClassesReport.worst`). Figures not measured are None.
    """

    w2: float
    w2_floor: float | None = None
    w2_ratio: float | None = None
    solver: str = "dopri5"
    nfe: int | None = None
    n: int | None = None
    draws: int | None = None
    mmd: float | None = None
    energy_distance: float | None = None
    w1_per_dim: tuple[float, ...] | None = None
    straightness: float | None = None
    path_energy: float | None = None
    nll: float | None = None
    nll_divergence: str | None = None
    min_class_accuracy: Mapping[float, float] = field(default_factory=dict)
    max_class_w2_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The full JSON form (`flowscope eval`): every measured figure, its solver and NFE apart, the notes."""
        out: dict[str, Any] = {"solver": self.solver, "nfe": self.nfe, "n": self.n, "draws": self.draws,
                               "w2": self.w2, "w2_floor": self.w2_floor, "w2_ratio": self.w2_ratio,
                               "mmd": self.mmd, "energy_distance": self.energy_distance}
        if self.energy_distance is not None:
            out["energy_distance_note"] = ENERGY_NOTE
        out.update(w1_per_dim=None if self.w1_per_dim is None else list(self.w1_per_dim),
                   straightness=self.straightness, path_energy=self.path_energy, nll=self.nll,
                   nll_divergence=self.nll_divergence)
        out.update(self._summary())
        keep = {"w2", "w2_floor", "w2_ratio"}  # None is a figure here: no floor for too few data points
        return {k: v for k, v in out.items() if v is not None or k in keep}

    def stored(self) -> dict[str, float]:
        """The summary a model file and the zoo's manifest store: W2, floor, ratio, path figures and NLL rounded,
        the NFE as `nfe_<solver>`, and a conditional model's worst-class figures (the form files always had)."""
        out: dict[str, Any] = {k: _round(getattr(self, k), d) for k, d in _DIGITS.items()}
        if self.nfe is not None:
            out[f"nfe_{self.solver}"] = int(self.nfe)
        out.update({k: round(v, _SUMMARY_DIGITS) for k, v in self._summary().items()})
        return {k: v for k, v in out.items() if v is not None}

    def _summary(self) -> dict[str, float]:
        """A conditional model's worst-class figures under their stored keys."""
        out = {f"min_class_accuracy_w{_w(w)}": a for w, a in self.min_class_accuracy.items()}
        if self.max_class_w2_ratio is not None:
            out["max_class_w2_ratio"] = self.max_class_w2_ratio
        return out

    def recorded(self) -> QualityReport:
        """This report as a model file keeps it (`stored()` read back): the figures of record, rounded."""
        return QualityReport.from_dict(self.stored())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        """A report from its full form (`to_dict`) or a stored summary (`stored`, also of older model files)."""
        solver, nfe = str(data.get("solver", "dopri5")), data.get("nfe")
        if nfe is None:  # a stored summary: nfe_<solver>
            key = next((k for k in data if k.startswith("nfe_")), None)
            if key is not None:
                solver, nfe = key.removeprefix("nfe_"), data[key]
        per_dim = data.get("w1_per_dim")
        return cls(w2=float(data["w2"]), w2_floor=_opt(data, "w2_floor"), w2_ratio=_opt(data, "w2_ratio"),
                   solver=solver, nfe=None if nfe is None else int(nfe),
                   n=None if data.get("n") is None else int(data["n"]),
                   draws=None if data.get("draws") is None else int(data["draws"]),
                   mmd=_opt(data, "mmd"), energy_distance=_opt(data, "energy_distance"),
                   w1_per_dim=None if per_dim is None else tuple(float(v) for v in per_dim),
                   straightness=_opt(data, "straightness"), path_energy=_opt(data, "path_energy"),
                   nll=_opt(data, "nll"), nll_divergence=data.get("nll_divergence"),
                   min_class_accuracy=_by_guidance(data, "min_class_accuracy"),
                   max_class_w2_ratio=_opt(data, "max_class_w2_ratio"))

    def headline(self) -> str:
        """Its quality in one figure with its yardstick: W2 / floor (W2 alone where the data allow no floor)."""
        return f"W2 {self.w2:.3f}" if self.w2_ratio is None else f"W2/floor {self.w2_ratio:.2f}"

    def rows(self) -> list[Row]:
        """The display rows (label, value, note) that the CLI prints and the explorer shows."""
        draws = f"{self.draws} draws of {self.n:,} points" if self.n and self.draws else "samples vs the data"
        rows = [_ratio_row("W2 / floor", self.w2_ratio, "W2", self.w2, self.w2_floor,
                           f"floor: W2 of two draws of the data; {draws}" if self.w2_floor is not None
                           else "too few data points for two draws")]
        if self.nfe is not None:
            rows.append(Row("NFE", str(self.nfe), f"velocity evaluations of {self.solver}"))
        if self.mmd is not None:
            rows.append(Row("MMD", f"{self.mmd:.4f}", "RBF kernel, first draw"))
        if self.energy_distance is not None:
            rows.append(Row("energy distance", f"{self.energy_distance:.4f}", ENERGY_NOTE))
        if self.straightness is not None:
            rows.append(Row("straightness", f"{self.straightness:.3f}", "0 = straight trajectories"))
        if self.path_energy is not None:
            rows.append(Row("path energy", f"{self.path_energy:.3f}", "mean squared speed along the trajectories"))
        if self.nll is not None:
            rows.append(Row("NLL", f"{self.nll:.2f}", "nats per held-out point, data coordinates"
                            + (f"; {self.nll_divergence}" if self.nll_divergence else "")))
        for w, accuracy in self.min_class_accuracy.items():
            rows.append(Row(f"worst class accuracy, w = {_w(w)}", f"{accuracy:.2f}",
                            "label accuracy of the worst class's samples at guidance w"))
        if self.max_class_w2_ratio is not None:
            rows.append(Row("worst class W2 / floor", f"{self.max_class_w2_ratio:.2f}",
                            "the class whose samples are farthest from its held-out points"))
        return rows


@dataclass(frozen=True)
class ClassReport:
    """One class of a conditional model (`report.evaluate_classes`): its held-out points, the W2 / floor of its
    samples at guidance 0 against them (None with fewer than 4), and its label accuracy by guidance scale."""

    name: str
    held_out: int
    accuracy: Mapping[float, float] = field(default_factory=dict)
    quality: QualityReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """The class's JSON row: held_out, accuracy_w<w> by scale, and n, draws, w2, w2_floor, w2_ratio."""
        out: dict[str, Any] = {"held_out": self.held_out}
        out.update({f"accuracy_w{_w(w)}": a for w, a in self.accuracy.items()})
        if self.quality is not None:
            out.update({k: v for k, v in self.quality.to_dict().items()
                        if k in ("n", "draws", "w2", "w2_floor", "w2_ratio")})
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ClassReport:
        """A class's report from its JSON row."""
        return cls(name=name, held_out=int(data.get("held_out", 0)), accuracy=_by_guidance(data, "accuracy"),
                   quality=QualityReport.from_dict(data) if "w2" in data else None)

    def rows(self) -> list[Row]:
        """Its display rows: W2 / floor against its held-out points, then label accuracy at each scale."""
        rows = []
        if self.quality is not None:
            q = self.quality
            rows.append(_ratio_row(f"{self.name}: W2 / floor", q.w2_ratio, "W2", q.w2, q.w2_floor,
                                   f"{self.held_out:,} held-out points of the class, w = 0"))
        rows += [Row(f"{self.name}: accuracy, w = {_w(w)}", f"{a:.2f}", "label accuracy of its samples")
                 for w, a in self.accuracy.items()]
        return rows


@dataclass(frozen=True)
class ClassesReport:
    """Every class of a conditional model, with where the held-out points came from ("fresh draws", "training
    rows") and what label accuracy was measured against (a nearest-neighbour vote of those points)."""

    classes: tuple[ClassReport, ...]
    held_out: str = ""
    accuracy_against: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON: {"held_out": ..., "label_accuracy_against": ... (each where known), "classes": {name: row}}."""
        out: dict[str, Any] = {}
        if self.held_out:
            out["held_out"] = self.held_out
        if self.accuracy_against:
            out["label_accuracy_against"] = self.accuracy_against
        out["classes"] = {c.name: c.to_dict() for c in self.classes}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassesReport:
        """The report from its JSON (as model files store it under `class_metrics`)."""
        rows = data.get("classes") or {}
        return cls(classes=tuple(ClassReport.from_dict(name, row) for name, row in rows.items()),
                   held_out=str(data.get("held_out", "")), accuracy_against=str(data.get("label_accuracy_against", "")))

    def worst(self) -> tuple[dict[float, float], float | None]:
        """(lowest label accuracy over the classes by guidance scale, highest W2 / floor), for the summary."""
        scales = sorted({w for c in self.classes for w in c.accuracy})
        accuracy = {w: min(c.accuracy[w] for c in self.classes if w in c.accuracy) for w in scales}
        ratios = [c.quality.w2_ratio for c in self.classes if c.quality is not None and c.quality.w2_ratio is not None]
        return accuracy, max(ratios) if ratios else None

    def rows(self) -> list[Row]:
        """Every class's display rows."""
        return [row for c in self.classes for row in c.rows()]


@dataclass(frozen=True)
class ImageSamples:
    """The figures of one set of an image model's samples: unconditional (guidance None) or, for a conditional
    model, class samples in the training proportions at guidance scale w. Frechet distance to the training
    images and its ratio to the floor; median nearest-training-image distance and its ratio to the held-out
    images'; the classifier's accuracy on the class samples (mean and worst class); the NFE."""

    guidance: float | None
    nn_median: float
    nn_ratio: float
    fd: float | None = None
    fd_ratio: float | None = None
    accuracy: float | None = None
    min_class_accuracy: float | None = None
    nfe: int | None = None

    @property
    def suffix(self) -> str:
        """The keys' suffix of this set: "" unconditional, "_w<w>" at guidance w."""
        return "" if self.guidance is None else f"_w{_w(self.guidance)}"

    @property
    def at(self) -> str:
        """How labels name this set: "" unconditional, ", w = <w>" at guidance w."""
        return "" if self.guidance is None else f", w = {_w(self.guidance)}"


@dataclass(frozen=True)
class ImageReport:
    """An image model against its training and held-out images (`image_quality.evaluate_images`).

    Yardsticks from real held-out images: their Frechet distance to the training images (the floor), their
    median nearest-training distance, the classifier's accuracy on them. One `ImageSamples` per sample set;
    bits per dimension of held-out images where measured. Figures not measured are None.
    """

    n: int
    nn_held_out_median: float
    samples: tuple[ImageSamples, ...]
    solver: str = "dopri5"
    fd_floor: float | None = None
    classifier_accuracy_held_out: float | None = None
    bits_per_dim: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The full JSON form (`flowscope eval`): the yardsticks, each set's figures under its suffix, the NFE
        of each set, bits per dimension with how it dequantises."""
        out: dict[str, Any] = {"n": self.n, "solver": self.solver, "nn_held_out_median": self.nn_held_out_median,
                               "fd_floor": self.fd_floor,
                               "classifier_accuracy_held_out": self.classifier_accuracy_held_out}
        for s in self.samples:
            out.update({f"nn_median{s.suffix}": s.nn_median, f"nn_ratio{s.suffix}": s.nn_ratio,
                        f"fd{s.suffix}": s.fd, f"fd_ratio{s.suffix}": s.fd_ratio, f"nfe{s.suffix}": s.nfe,
                        f"accuracy{s.suffix}": s.accuracy, f"min_class_accuracy{s.suffix}": s.min_class_accuracy})
        if self.bits_per_dim is not None:
            out.update(bits_per_dim=self.bits_per_dim, bits_per_dim_note=DEQUANTISATION)
        return {k: v for k, v in out.items() if v is not None}

    def stored(self) -> dict[str, float]:
        """The summary a model file and the zoo's manifest store: the figures to 4 decimals, and the NFE of the
        first sample set as `nfe_<solver>` (the form files always had)."""
        full = self.to_dict()
        out: dict[str, Any] = {k: v if isinstance(v, int) else round(v, _SUMMARY_DIGITS) for k, v in full.items()
                               if isinstance(v, int | float) and not k.startswith("nfe")}
        if self.nfe is not None:
            out[f"nfe_{self.solver}"] = self.nfe
        return out

    @property
    def nfe(self) -> int | None:
        """The NFE of the first sample set (unguided): the one a stored summary keeps."""
        return next((s.nfe for s in self.samples if s.nfe is not None), None)

    def recorded(self) -> ImageReport:
        """This report as a model file keeps it (`stored()` read back)."""
        return ImageReport.from_dict(self.stored())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageReport:
        """A report from its full form (`to_dict`) or a stored summary (`stored`, also of older model files)."""
        suffixes = sorted({k.removeprefix("nn_ratio") for k in data if k.startswith("nn_ratio")},
                          key=lambda s: -math.inf if not s else float(s.removeprefix("_w")))
        solver, first_nfe = str(data.get("solver", "dopri5")), None
        key = next((k for k in data if k.startswith("nfe_") and not k.startswith("nfe_w")), None)
        if key is not None:  # a stored summary: nfe_<solver>, the first set's
            solver, first_nfe = key.removeprefix("nfe_"), int(data[key])
        sets = []
        for i, suffix in enumerate(suffixes):
            nfe = data.get(f"nfe{suffix}")
            sets.append(ImageSamples(
                guidance=float(suffix.removeprefix("_w")) if suffix else None,
                nn_median=float(data[f"nn_median{suffix}"]), nn_ratio=float(data[f"nn_ratio{suffix}"]),
                fd=_opt(data, f"fd{suffix}"), fd_ratio=_opt(data, f"fd_ratio{suffix}"),
                accuracy=_opt(data, f"accuracy{suffix}"), min_class_accuracy=_opt(data, f"min_class_accuracy{suffix}"),
                nfe=int(nfe) if nfe is not None else first_nfe if i == 0 else None))
        return cls(n=int(data.get("n", 0)), nn_held_out_median=float(data["nn_held_out_median"]), samples=tuple(sets),
                   solver=solver, fd_floor=_opt(data, "fd_floor"),
                   classifier_accuracy_held_out=_opt(data, "classifier_accuracy_held_out"),
                   bits_per_dim=_opt(data, "bits_per_dim"))

    def headline(self) -> str:
        """Its quality in one figure with its yardstick: FD / floor of the first sample set (unguided), or, judged
        without a classifier, NN / held-out."""
        first = self.samples[0] if self.samples else None
        if first is None:
            return "no recorded quality"
        if first.fd_ratio is not None:
            return f"FD/floor {first.fd_ratio:.2f}"
        return f"NN/held-out {first.nn_ratio:.2f}"

    def rows(self) -> list[Row]:
        """The display rows (label, value, note) that the CLI prints and the explorer shows: for each sample set
        FD / floor, class accuracy and NN / held-out beside their yardsticks, its NFE; then bits per dimension."""
        rows = []
        for s in self.samples:
            if s.fd is not None:
                rows.append(_ratio_row(f"FD / floor{s.at}", s.fd_ratio, "FD", s.fd, self.fd_floor,
                                       "held-out images to the training images"))
            if s.accuracy is not None:
                real = self.classifier_accuracy_held_out
                rows.append(Row(f"class accuracy{s.at}", f"{s.accuracy:.2f}",
                                (f"worst class {s.min_class_accuracy:.2f}; " if s.min_class_accuracy is not None
                                 else "") + ("" if real is None else f"the classifier on held-out images {real:.2f}")))
            rows.append(Row(f"NN / held-out{s.at}", f"{s.nn_ratio:.2f}",
                            f"median distance to the nearest training image {s.nn_median:.2f}, held-out images' "
                            f"{self.nn_held_out_median:.2f} (below 1: closer than new real images)"))
            if s.nfe is not None:
                rows.append(Row(f"NFE{s.at}", str(s.nfe), f"velocity evaluations of {self.solver}"))
        if self.bits_per_dim is not None:
            rows.append(Row("bits per dimension", f"{self.bits_per_dim:.2f}",
                            "held-out images, uniformly dequantised (an upper bound of the discrete NLL)"))
        return rows


def stored_report(metrics: Mapping[str, Any] | None) -> QualityReport | ImageReport | None:
    """The typed report of metrics a model file or the zoo's manifest stores (a vector model's W2 figures or an
    image model's); None where there are none."""
    if not metrics:
        return None
    if "w2" in metrics:
        return QualityReport.from_dict(metrics)
    if "nn_held_out_median" in metrics and any(k.startswith("nn_ratio") for k in metrics):
        return ImageReport.from_dict(metrics)
    return None

