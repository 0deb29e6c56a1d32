"""Linear 2-D views of D-dimensional data: two chosen coordinates, or the data's principal axes.

Why: every view of a d > 2 model draws a projection, and the exact fields are evaluated on a plane through
a chosen point, in all D dimensions, then projected. A `Projection` maps points by
uv = ((x - origin) * weights) @ axes.T with orthonormal axes: weights 1 for two data coordinates (the
plane's coordinates are the data's own values), or 1 / scale for principal axes, which are fitted in the
model's normalised coordinates: on raw wine data the first principal axis would be proline alone, whose
values are ~1000 times the others'. For D = 2 and the coordinate axes it is the identity, today's view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..maths.columns import generated_columns
from ..maths.normalizer import Normalizer

__all__ = ["Projection", "coordinate_projection", "pca_projection"]


@dataclass(frozen=True)
class Projection:
    """uv = ((x - origin) * weights) @ axes.T: a 2-D view of D-dimensional points.

    Attributes:
        origin: [D], projected to (0, 0) (zeros for coordinates, so the axes read the data's values).
        weights: [D], the metric in which the axes are orthonormal (1, or 1 / the model's scale).
        axes: two orthonormal rows [2, D].
        labels: the two axes' names (column names, or "PC1 (40% of variance)").
    """

    origin: tuple[float, ...]
    weights: tuple[float, ...]
    axes: tuple[tuple[float, ...], tuple[float, ...]]
    labels: tuple[str, str]

    @property
    def dim(self) -> int:
        """D, the dimension of the points it projects."""
        return len(self.origin)

    def _tensors(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """origin [D], weights [D] and axes [2, D] on like's dtype and device."""
        def tensor(values: tuple[float, ...] | tuple[tuple[float, ...], ...]) -> Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device)

        return tensor(self.origin), tensor(self.weights), tensor(self.axes)

    def project(self, x: Tensor) -> Tensor:
        """Points [..., D] -> their plane coordinates [..., 2]."""
        origin, weights, axes = self._tensors(x)
        return ((x - origin) * weights) @ axes.T

    def project_velocity(self, v: Tensor) -> Tensor:
        """Velocities [..., D] -> their components along the two axes [..., 2] (the plane's arrows)."""
        _, weights, axes = self._tensors(v)
        return (v * weights) @ axes.T

    def plane(self, through: Tensor, uv: Tensor) -> Tensor:
        """The D-dimensional points [M, D] of the plane through `through` [D] at plane coordinates uv [M, 2].

        The plane is spanned by the axes: project(plane(c, uv)) == uv, and plane(c, project(c)) == c.
        """
        _, weights, axes = self._tensors(uv)
        offset = uv - self.project(through.to(uv))[None]
        return through.to(uv)[None] + (offset @ axes) / weights


def coordinate_projection(dim: int, first: int, second: int, names: tuple[str, ...] | None = None) -> Projection:
    """The view of two data coordinates (0-based column indices), labelled with their names."""
    if not (0 <= first < dim and 0 <= second < dim) or first == second:
        raise ValueError(f"choose two different columns among 0..{dim - 1}, got {first} and {second}")
    labels = names if names is not None and len(names) == dim else generated_columns(dim)
    axes = tuple(tuple(1.0 if j == k else 0.0 for j in range(dim)) for k in (first, second))
    return Projection(origin=(0.0,) * dim, weights=(1.0,) * dim, axes=(axes[0], axes[1]),
                      labels=(labels[first], labels[second]))


def pca_projection(data: Tensor, normalizer: Normalizer) -> Projection:
    """The data's first two principal axes, fitted in the model's normalised coordinates (see the module).

    Constant columns get zero loadings. The labels say how much of the (normalised) variance each axis holds.
    """
    z = normalizer.encode(data.double())
    centred = z - z.mean(0)
    if z.shape[1] < 2:
        raise ValueError("principal axes need at least two varying columns")
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    share = singular.square() / singular.square().sum().clamp_min(1e-300)
    varying = [j for j in range(normalizer.data_dim) if j not in set(normalizer.constant)]
    axes = torch.zeros(2, normalizer.data_dim, dtype=torch.float64)
    axes[:, varying] = vh[:2]
    # a principal axis has no sign: point each one where its largest loading is positive, for stable views
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * signs
    origin = data.double().mean(0)
    weights = 1.0 / torch.tensor(normalizer.scale, dtype=torch.float64)
    labels = (f"PC1 ({float(share[0]):.0%} of variance)", f"PC2 ({float(share[1]):.0%} of variance)")
    return Projection(origin=tuple(origin.tolist()), weights=tuple(weights.tolist()),
                      axes=(tuple(axes[0].tolist()), tuple(axes[1].tolist())), labels=labels)
