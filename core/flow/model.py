"""A trained flow: velocity network, probability path, normalisation and source, in data coordinates.

The network works in normalised coordinates z = (x - mean) / scale; `FlowModel` hides that, so every
caller (sampling, fields, likelihood, UI) sees data coordinates and the velocity dx/dt = scale * v(z, t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..maths import gaussian
from ..maths.imagespec import ImageSpec
from ..maths.normalizer import Normalizer
from ..maths.paths import AffinePath
from ..nets.models import VelocityNet
from ..solver.sampling import SampleResult, SolverConfig, Velocity, integrate

__all__ = ["FlowModel", "resolve_device"]


def resolve_device(name: str | None = None) -> torch.device:
    """The requested device, or the best available one: cuda, then mps, then cpu."""
    if name not in (None, "", "auto"):
        device = torch.device(str(name))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class FlowModel:
    """Everything needed to sample, evaluate and show a trained flow.

    Attributes:
        net: the velocity network in normalised coordinates.
        path: the probability path it was trained on.
        normalizer: data <-> model coordinates.
        source: source samples in data coordinates for a non-Gaussian source; None for N(0, prior_std^2 I).
        coupling: how source and data were paired in training.
        info: dataset name and hash, training settings, metrics: the checkpoint's JSON config extras.
        data: optionally, a sample of the training data in data coordinates, stored with the model so that
            views of it need no dataset (the pretrained tabular models carry theirs).
        labels: the class names of a conditional model, in the order of its label indices; () otherwise.
        data_labels: the class index of each row of `data` [n], for a conditional model's views.
        image: for an image model, the image shape and pixel range (data rows are flat images); None otherwise.
    """

    net: VelocityNet
    path: AffinePath
    normalizer: Normalizer
    source: Tensor | None = None
    coupling: str = "independent"
    info: dict[str, Any] = field(default_factory=dict)
    data: Tensor | None = None
    labels: tuple[str, ...] = ()
    data_labels: Tensor | None = None
    image: ImageSpec | None = None

    @property
    def conditional(self) -> bool:
        """Whether the model takes a class label (trained with labels and label dropout)."""
        return bool(self.labels)

    def label_index(self, label: str | int) -> int:
        """The index of a class given by name or index; ValueError naming the model's classes otherwise."""
        if not self.conditional:
            raise ValueError("this model is not conditional: it was trained without labels")
        if isinstance(label, str) and label in self.labels:
            return self.labels.index(label)
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.labels):
            return label
        raise ValueError(f"unknown label {label!r}; this model's labels are {', '.join(map(repr, self.labels))}")

    def guided_latent(self, label: str | int | None = None, guidance: float = 0.0) -> Velocity:
        """The velocity in normalised coordinates for sampling class `label` with guidance scale w:

            v_w(z, t) = v(z, t, y) + w (v(z, t, y) - v(z, t, none))

        w = 0 is plain conditional sampling, w > 0 pushes samples away from the other classes (Ho & Salimans'
        (1 + w) eps(x, y) - w eps(x), and Meta's flow_matching `cfg_scale`, use the same w). `label` None is
        the unconditional field (the "no label" token of a conditional model). Both fields come from one
        batched network call.
        """
        if label is None:
            return self.latent_velocity
        y = self.label_index(label)
        null = self.net.null_label

        def velocity(z: Tensor, t: Tensor) -> Tensor:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device).reshape(-1).expand(z.shape[0])
            labels = torch.full((z.shape[0],), y, dtype=torch.long, device=z.device)
            if guidance == 0:
                return self.net(z, t, labels)
            both = self.net(torch.cat([z, z]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, null)]))
            conditional, unconditional = both.chunk(2)
            return conditional + guidance * (conditional - unconditional)

        return velocity

    @property
    def dim(self) -> int:
        """Data dimension D (columns of the data, constant ones included)."""
        return self.normalizer.data_dim

    @property
    def latent_dim(self) -> int:
        """The dimension d the flow works in: the data's columns that are not constants of the model."""
        return self.net.config.dim

    @property
    def device(self) -> torch.device:
        """Device of the network's weights."""
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> FlowModel:
        """Move the network (and source samples) to `device`, in place; returns self."""
        self.net.to(device)
        if self.source is not None:
            self.source = self.source.to(device)
        return self

    def velocity(self, x: Tensor, t: Tensor, label: str | int | None = None, guidance: float = 0.0) -> Tensor:
        """Learned field in data coordinates: dx/dt = scale * v_theta((x - mean) / scale, t), for a conditional
        model of class `label` with guidance w (see `guided_latent`; None: its unconditional field)."""
        return self.normalizer.decode_velocity(self.guided_latent(label, guidance)(self.normalizer.encode(x), t))

    def latent_velocity(self, z: Tensor, t: Tensor) -> Tensor:
        """Learned field in normalised coordinates (what the network outputs)."""
        return self.net(z, t)

    def draw_source(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n starting points at t = 0 in data coordinates: the Gaussian prior, or stored source samples."""
        device = self.device
        if self.source is None:
            z = torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(device) * self.path.prior_std
            return self.normalizer.decode(z)
        index = torch.randint(len(self.source), (n,), generator=generator, device="cpu").to(device)
        return self.source[index]

    def sample(
        self,
        n: int | None = None,
        *,
        x0: Tensor | None = None,
        solver: SolverConfig = SolverConfig(),
        times: Tensor | None = None,
        generator: torch.Generator | None = None,
        chunk_size: int = 65536,
        label: str | int | None = None,
        guidance: float = 0.0,
    ) -> SampleResult:
        """Integrate from t = 0 to path.t_max; start at `x0` (data coordinates) or draw n source points.

        The trajectory is integrated in normalised coordinates and returned in data coordinates. A conditional
        model samples class `label` (a name or an index) with guidance scale w (`guided_latent`), or its
        unconditional field when label is None. An adaptive solver that fails on the field falls back to fixed
        steps (`integrate`; `SampleResult.fallback` says so).
        """
        if x0 is None:
            if n is None:
                raise ValueError("sample needs n or x0")
            x0 = self.draw_source(n, generator)
        z0 = self.normalizer.encode(x0.to(self.device, torch.float32))
        was_training = self.net.training
        self.net.eval()
        try:
            result = integrate(
                self.guided_latent(label, guidance), z0, t1=self.path.t_max, solver=solver, times=times,
                chunk_size=chunk_size,
            )
        finally:
            self.net.train(was_training)
        trajectory = self.normalizer.decode(result.trajectory)
        return SampleResult(samples=trajectory[-1], trajectory=trajectory, times=result.times, nfe=result.nfe,
                            fallback=result.fallback)

    def predict_x1(self, x: Tensor, t: float, label: str | int | None = None, guidance: float = 0.0) -> Tensor:
        """The data point the learned field at x (data coordinates) heads for at time t: `AffinePath.x1_prediction`
        of the (guided) velocity, in data coordinates; for an image model, the model's current guess of the image."""
        z = self.normalizer.encode(x.to(self.device, torch.float32))
        with torch.no_grad():
            v = self.guided_latent(label, guidance)(z, torch.full((z.shape[0],), float(t), device=z.device))
        return self.normalizer.decode(self.path.x1_prediction(z, v, t))

    def clamp_time(self, t: float) -> float:
        """t limited to [0, path.t_max] (paths with sigma_1 = 0 stop just before 1)."""
        return float(min(max(t, 0.0), self.path.t_max))

    def source_std(self) -> Tensor:
        """Per-column std of the Gaussian source in data coordinates [D]: prior_std times the scale, 0 if constant."""
        return self.normalizer.decode_velocity(torch.full((self.latent_dim,), self.path.prior_std, dtype=torch.float64))

    def prior_log_density(self, x: Tensor) -> Tensor:
        """log density at t = 0 of data-coordinate points for the Gaussian prior (None-source models)."""
        return gaussian.log_prob(self.normalizer.encode(x), self.path.prior_std) - self.normalizer.log_det
