"""How good an image flow is: Frechet distance on a classifier's features, the classifier's accuracy on guided
class samples, nearest-neighbour distances (the memorisation check) and the dequantised NLL in bits per
dimension. `evaluate_images` is the one report that the CLI, the zoo, the bench and the explorer show.

Each figure has its yardstick, computed the same way on real images the model never saw (the held-out
split): the Frechet distance of held-out images to the training images is the floor that samples are
compared with; the distance of a held-out image to its nearest training image is what "new" looks like,
and a sample much closer to a training image than that is a copy (the exact marginal field's samples are).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch

from ..data.images import ImageData
from ..flow.model import FlowModel
from ..solver.sampling import SolverConfig
from .classifier import ImageClassifier
from .records import DEQUANTISATION, ImageReport, ImageSamples
from .report import held_out_nll

__all__ = ["DEQUANTISATION", "IMAGE_SOLVER", "bits_per_dim", "evaluate_images", "frechet_distance",
           "image_samples", "leave_one_out_distances", "nearest_neighbours"]

#: The solver of image samples in reports: dopri5 at the tolerance of the 2-D reports.
IMAGE_SOLVER = SolverConfig(method="dopri5", atol=1e-5, rtol=1e-5)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets [n, k]: |mu_a - mu_b|^2 + Tr(S_a + S_b -
    2 (S_a S_b)^(1/2)) (Heusel et al. 2017), with scipy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(scipy.linalg.sqrtm(cov_a @ cov_b))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """For each query image (flat or not), the Euclidean distance to its nearest reference image and that
    image's index (data units), computed a chunk of queries at a time."""
    ref = torch.from_numpy(np.ascontiguousarray(reference.reshape(len(reference), -1), dtype=np.float64))
    q = torch.from_numpy(np.ascontiguousarray(queries.reshape(len(queries), -1), dtype=np.float64))
    distances, indices = [], []
    for block in q.split(chunk):
        best = torch.cdist(block, ref).min(dim=1)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def leave_one_out_distances(images: np.ndarray, n: int | None = None, chunk: int = 1024) -> np.ndarray:
    """For each of the first n images of a set (all by default), the Euclidean distance to the nearest OTHER
    image of the set (data units): the memorisation check's yardstick when no held-out images exist, since a
    real image that the set does not contain is typically that far from the set (a copy is at 0)."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float64)
    if len(flat) < 2:
        raise ValueError("leave-one-out distances need at least 2 images")
    ref = torch.from_numpy(flat)
    queries = ref[: len(flat) if n is None else min(n, len(flat))]
    distances = []
    for start, block in zip(range(0, len(queries), chunk), queries.split(chunk), strict=True):
        d = torch.cdist(block, ref)
        d[torch.arange(len(block)), torch.arange(start, start + len(block))] = math.inf  # not itself
        distances.append(d.min(dim=1).values)
    return torch.cat(distances).numpy()


def bits_per_dim(flow: FlowModel, images: np.ndarray, *, seed: int = 0,
                 solver: SolverConfig = IMAGE_SOLVER) -> float:
    """Mean NLL of images in bits per dimension, uniformly dequantised (see `DEQUANTISATION`); for continuous
    pixels (no levels) the plain density's -log2 p(x) / D, with no dequantisation."""
    if flow.image is None:
        raise ValueError("bits per dimension are for image models")
    spec = flow.image
    x = np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float64)
    width = spec.bin_width
    if width is not None:
        x = x + np.random.default_rng(seed).uniform(-width / 2, width / 2, size=x.shape)
    nll = held_out_nll(flow, x.astype(np.float32), solver=solver, seed=seed)
    return (nll - spec.dim * math.log(width or 1.0)) / (spec.dim * math.log(2.0))


def image_samples(flow: FlowModel, n: int, *, label: int | None = None, guidance: float = 0.0, seed: int = 0,
                  solver: SolverConfig = IMAGE_SOLVER) -> tuple[np.ndarray, int]:
    """n samples [n, C, H, W] in the data's units (clipped to its pixel range), and the solver's NFE."""
    if flow.image is None:
        raise ValueError("image_samples is for image models")
    result = flow.sample(n, solver=solver, generator=torch.Generator().manual_seed(seed), label=label,
                         guidance=guidance)
    pixels = flow.image.to_pixels(result.samples.cpu().numpy())
    return np.asarray(flow.image.unflatten(pixels)), result.nfe


def _class_counts(flow: FlowModel, n: int) -> list[int]:
    """n samples shared among a conditional model's classes in proportion to its training counts."""
    counts = np.asarray(flow.info.get("class_counts") or [1] * len(flow.labels), dtype=np.float64)
    share = np.floor(n * counts / counts.sum()).astype(int)
    share[: n - share.sum()] += 1
    return share.tolist()


def evaluate_images(flow: FlowModel, train: ImageData, held_out: ImageData, classifier: ImageClassifier | None, *,
                    n: int | None = None, guidance: tuple[float, ...] = (0.0, 1.0, 3.0), seed: int = 0,
                    solver: SolverConfig = IMAGE_SOLVER, nll_images: int = 200) -> ImageReport:
    """The report of an image model against its training images and held-out real images.

    Samples: n (default: as many as held-out images, so that the two Frechet distances are comparable)
    unconditional samples, or for a conditional model class samples in the training proportions at each
    guidance scale. Figures: Frechet distance to the training images (and the held-out images' own, the
    floor, and their ratio); the classifier's accuracy on held-out images and, per guidance scale, on class
    samples; the median distance of a sample to its nearest training image against that of a held-out
    image, and their ratio (far below 1: the model copies); the NFE; bits per dimension of `nll_images`
    held-out images (0: skipped). Without a classifier (images of no known kind, without labels to train one)
    the Frechet distance and the accuracies are left out.
    """
    n = n or len(held_out)
    held_nn, _ = nearest_neighbours(held_out.images, train.images)
    held_median = float(np.median(held_nn))
    floor, real_accuracy = None, None
    if classifier is not None:
        train_features = classifier.embed(train.images)
        floor = frechet_distance(classifier.embed(held_out.images), train_features)
        if held_out.labels is not None and classifier.config.classes == held_out.names:
            predicted = classifier.predict(held_out.images)
            real_accuracy = float((predicted == held_out.labels).mean())

    def judge(samples: np.ndarray, guidance: float | None, nfe: int, hits: list[np.ndarray]) -> ImageSamples:
        nn_median = float(np.median(nearest_neighbours(samples, train.images)[0]))
        fd = None if classifier is None else frechet_distance(classifier.embed(samples), train_features)
        return ImageSamples(guidance=guidance, nn_median=nn_median, nn_ratio=nn_median / max(held_median, 1e-12),
                            fd=fd, fd_ratio=None if fd is None or not floor else fd / floor,
                            accuracy=float(np.concatenate(hits).mean()) if hits else None,
                            min_class_accuracy=min(float(h.mean()) for h in hits) if hits else None, nfe=nfe)

    sets = []
    if not flow.conditional:
        samples, nfe = image_samples(flow, n, seed=seed, solver=solver)
        sets.append(judge(samples, None, nfe, []))
    else:
        same_classes = classifier is not None and classifier.config.classes == flow.labels
        for w in guidance:
            parts, nfes, correct = [], [], []
            for k, count in enumerate(_class_counts(flow, n)):
                if count == 0:
                    continue
                samples, nfe = image_samples(flow, count, label=k, guidance=w, seed=seed + 7919 * k, solver=solver)
                parts.append(samples)
                nfes.append(nfe)
                if same_classes and classifier is not None:
                    correct.append(classifier.predict(samples) == k)
            sets.append(judge(np.concatenate(parts), float(w), int(np.mean(nfes)), correct))
    bits = None
    if nll_images > 0 and flow.source is None:
        bits = bits_per_dim(flow, held_out.images[:nll_images], seed=seed, solver=solver)
    return ImageReport(n=n, nn_held_out_median=held_median, samples=tuple(sets), solver=solver.method,
                       fd_floor=floor, classifier_accuracy_held_out=real_accuracy, bits_per_dim=bits)
