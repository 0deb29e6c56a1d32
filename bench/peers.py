"""One adapter per framework (flowscope, TorchCFM, Meta's flow_matching) behind the same small interface.

Each adapter can
- `train_same`: train a given architecture (the *same* MLP for everyone) with the same batch, optimiser
  (Adam, lr 1e-3, constant, no clipping) and number of steps, with independent or minibatch-OT coupling;
- `train_recipe`: train the framework's *documented* 2-D recipe until a wall-clock budget is spent;
- `sample`: integrate a velocity field with the framework's own sampling route, counting evaluations.

The peers' loops follow their own examples line by line (TorchCFM's `examples/2D_tutorials` and
`runner/.../two-dim` scripts; flow_matching's `examples/2d_flow_matching.ipynb`), so a peer is timed doing
what its users are told to do. flowscope is always driven through its public API (`flowscope.train`,
`flowscope.integrate`): what is timed is what a flowscope user gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from measure import Stopwatch
from torch import Tensor, nn
from torchdiffeq import odeint

import flowscope
from flowscope import MLPConfig, SolverConfig, TrainConfig, VelocityMLP
from flowscope.evaluation.report import REFERENCE_SOLVER, DataSampler
from flowscope.solver.sampling import Velocity

# --------------------------------------------------------------------------------------------------------
# Shared pieces


@dataclass
class Task:
    """A 2-D benchmark problem: training data (and source samples), fresh data to judge samples by.

    Attributes:
        name: e.g. "moons" or "8gaussians->moons".
        data: training points [N, 2] (float32, data coordinates, on the benchmark device).
        source: training source samples [M, 2] for a non-Gaussian source, else None (N(0, I)).
        eval_source: fresh source points to start evaluation samples from (non-Gaussian source), else None.
        reference: sample_data(n, seed), fresh draws of the data that `flowscope.evaluation` judges samples by.
    """

    name: str
    data: Tensor
    source: Tensor | None
    eval_source: Tensor | None
    reference: DataSampler


@dataclass
class Trained:
    """A trained velocity field in data coordinates and how it was obtained."""

    framework: str
    velocity: Velocity
    draw_x0: Callable[[int, torch.Generator], Tensor]
    steps: int
    seconds: float
    t1: float = 1.0
    sample_fn: Callable[[Tensor], tuple[Tensor, int]] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ms_per_step(self) -> float:
        """Training-loop milliseconds per optimiser step."""
        return 1e3 * self.seconds / max(self.steps, 1)


class CountingVelocity(nn.Module):
    """v(x, t) wrapper that counts calls and evaluated rows, so every sampler's NFE is counted the same way."""

    def __init__(self, velocity: Velocity) -> None:
        super().__init__()
        self.velocity = velocity
        self.calls = 0
        self.rows = 0

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        return self.velocity(x, t)


def same_mlp_config(width: int = 64, depth: int = 3) -> MLPConfig:
    """The shared architecture: MLP on concat(x, t), SELU, `depth` hidden layers (TorchCFM's 2-D MLP)."""
    return MLPConfig(dim=2, width=width, depth=depth, activation="selu", time_features=0, fourier_features=0)


def _draw_batch(pool: Tensor, batch: int) -> Tensor:
    return pool[torch.randint(len(pool), (batch,), device=pool.device)]


def _gaussian_x0(device: torch.device) -> Callable[[int, torch.Generator], Tensor]:
    def draw(n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, 2, generator=generator).to(device)

    return draw


def _peer_loop(
    task: Task,
    net: nn.Module,
    loss_of: Callable[[Tensor, Tensor], Tensor],
    *,
    batch: int,
    steps: int | None,
    seconds: float | None,
) -> tuple[int, float]:
    """A peer's training loop as both peers' 2-D examples write it: Adam lr 1e-3; per step x1 from the data,
    x0 ~ N(0, I) (or from the source), the framework's loss_of(x0, x1); until `steps` or the budget is spent.

    Returns (steps done, seconds).
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    watch = Stopwatch(task.data.device)
    k = 0
    while (steps is None or k < steps) and (seconds is None or watch.elapsed() < seconds):
        optimizer.zero_grad()
        x1 = _draw_batch(task.data, batch)
        x0 = torch.randn_like(x1) if task.source is None else _draw_batch(task.source, batch)
        loss_of(x0, x1).backward()
        optimizer.step()
        k += 1
    return k, watch.stop()


def reference_sample(velocity: Velocity, x0: Tensor, t1: float = 1.0) -> tuple[Tensor, int]:
    """The evaluation sampler used for every framework's W2: flowscope.evaluation's REFERENCE_SOLVER (dopri5,
    atol = rtol = 1e-5, torchdiffeq)."""
    counted = CountingVelocity(velocity)
    result = flowscope.integrate(counted, x0, t1=t1, solver=REFERENCE_SOLVER)
    return result.samples, result.nfe


# --------------------------------------------------------------------------------------------------------
# flowscope


class Flowscope:
    """flowscope through its public API: `flowscope.train` and `flowscope.integrate`."""

    name = "flowscope"
    has_ot = True

    @staticmethod
    def _trained(result: flowscope.TrainResult, name: str) -> Trained:
        flow = result.model

        def sample(x0: Tensor) -> tuple[Tensor, int]:
            out = flow.sample(x0=x0, solver=REFERENCE_SOLVER)
            return out.samples, out.nfe

        def draw(n: int, generator: torch.Generator) -> Tensor:
            return flow.draw_source(n, generator)

        return Trained(
            framework=name,
            velocity=flow.velocity,
            draw_x0=draw,
            steps=len(result.losses),
            seconds=result.seconds,
            t1=flow.path.t_max,
            sample_fn=sample,
            info={"flow": flow},
        )

    def train_same(
        self,
        task: Task,
        mlp: MLPConfig,
        *,
        batch: int,
        steps: int,
        coupling: str = "independent",
        seed: int = 0,
        device: torch.device,
    ) -> Trained:
        """Same MLP, Adam lr 1e-3 constant, no clipping; flowscope keeps its normalisation and EMA."""
        config = TrainConfig(
            steps=steps,
            batch_size=batch,
            lr=1e-3,
            optimizer="adam",
            schedule="constant",
            warmup_steps=0,
            grad_clip=0.0,
            seed=seed,
            device=str(device),
        )
        result = flowscope.train(task.data, model=mlp, config=config, source=task.source, coupling=coupling)
        return self._trained(result, self.name)

    def train_recipe(
        self,
        task: Task,
        *,
        seconds: float,
        seed: int = 0,
        device: torch.device,
        config: TrainConfig | None = None,
        model: MLPConfig | None = None,
    ) -> Trained:
        """flowscope's defaults (TrainConfig(), MLPConfig(dim)), stopped early only if the budget runs out."""
        config = config or TrainConfig(seed=seed, device=str(device))
        mlp = model or MLPConfig(dim=int(task.data.shape[1]))

        def stop(info: flowscope.StepInfo, _flow: Any) -> bool:
            return info.seconds >= seconds

        result = flowscope.train(task.data, model=model, config=config, source=task.source, callback=stop)
        trained = self._trained(result, self.name)
        trained.info["recipe"] = (
            f"TrainConfig() defaults: {config.steps} steps, batch {config.batch_size}, {config.optimizer} "
            f"lr {config.lr:g} {config.schedule}, EMA {config.ema_decay}; MLPConfig(width {mlp.width}, depth "
            f"{mlp.depth}, {mlp.activation}, time_features {mlp.time_features}, "
            f"fourier_features {mlp.fourier_features})"
        )
        return trained

    def sample(self, velocity: Velocity, x0: Tensor, solver: SolverConfig) -> tuple[Tensor, int, int]:
        """flowscope.integrate; returns (samples, NFE per point, velocity calls)."""
        counted = CountingVelocity(velocity)
        result = flowscope.integrate(counted, x0, solver=solver)
        return result.samples, round(counted.rows / len(x0)), counted.calls


# --------------------------------------------------------------------------------------------------------
# TorchCFM


class TorchCFM:
    """TorchCFM (PyPI torchcfm): ConditionalFlowMatcher / ExactOptimalTransportConditionalFlowMatcher."""

    name = "torchcfm"
    has_ot = True

    def __init__(self) -> None:
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )

        self._matchers = {"independent": ConditionalFlowMatcher, "ot": ExactOptimalTransportConditionalFlowMatcher}

    def _loop(
        self,
        task: Task,
        net: nn.Module,
        forward: Callable[[Tensor, Tensor], Tensor],
        *,
        batch: int,
        steps: int | None,
        seconds: float | None,
        sigma: float,
        coupling: str,
    ) -> tuple[int, float]:
        fm = self._matchers[coupling](sigma=sigma)

        def loss_of(x0: Tensor, x1: Tensor) -> Tensor:
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            vt = forward(xt, t)
            return torch.mean((vt - ut) ** 2)

        return _peer_loop(task, net, loss_of, batch=batch, steps=steps, seconds=seconds)

    def train_same(
        self,
        task: Task,
        mlp: MLPConfig,
        *,
        batch: int,
        steps: int,
        coupling: str = "independent",
        seed: int = 0,
        device: torch.device,
    ) -> Trained:
        """The same MLP through TorchCFM's matcher (sigma = 0: the paper's OT path, as flowscope's)."""
        torch.manual_seed(seed)
        net = VelocityMLP(mlp).to(device)
        done, secs = self._loop(task, net, net, batch=batch, steps=steps, seconds=None, sigma=0.0, coupling=coupling)
        return Trained(self.name, net.eval(), self._draw(task, device), done, secs)

    def train_recipe(self, task: Task, *, seconds: float, seed: int = 0, device: torch.device) -> Trained:
        """TorchCFM's 2-D example: MLP(dim=2, w=64, time_varying=True) (SELU), Adam(), batch 256, sigma 0.1."""
        from torchcfm.models.models import MLP

        torch.manual_seed(seed)
        model = MLP(dim=2, time_varying=True).to(device)

        def forward(x: Tensor, t: Tensor) -> Tensor:
            t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
            if t.dim() == 0 or t.numel() == 1:
                t = t.reshape(1).expand(x.shape[0])
            return model(torch.cat([x, t[:, None]], dim=-1))

        done, secs = self._loop(
            task, model, forward, batch=256, steps=None, seconds=seconds, sigma=0.1, coupling="independent"
        )
        trained = Trained(self.name, forward, self._draw(task, device), done, secs)
        trained.info["recipe"] = "ConditionalFlowMatcher(sigma=0.1), MLP w=64 SELU, Adam lr 1e-3, batch 256"
        return trained

    @staticmethod
    def _draw(task: Task, device: torch.device) -> Callable[[int, torch.Generator], Tensor]:
        return _gaussian_x0(device)

    def sample(self, velocity: Velocity, x0: Tensor, solver: SolverConfig) -> tuple[Tensor, int, int]:
        """torchdiffeq.odeint on f(t, x) = v(x, t), as TorchCFM's 2-D examples integrate their models."""
        counted = CountingVelocity(velocity)
        grid = torch.tensor([0.0, 1.0], device=x0.device)
        with torch.no_grad():
            if solver.method == "dopri5":
                traj = odeint(lambda t, x: counted(x, t), x0, grid, method="dopri5", atol=solver.atol, rtol=solver.rtol)
            else:
                traj = odeint(
                    lambda t, x: counted(x, t),
                    x0,
                    grid,
                    method=solver.method,
                    options={"step_size": 1.0 / solver.steps},
                )
        return traj[-1], round(counted.rows / len(x0)), counted.calls


# --------------------------------------------------------------------------------------------------------
# Meta's flow_matching


class _Swish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x) * x


class _FMExampleMLP(nn.Module):
    """The velocity MLP of flow_matching's examples/2d_flow_matching.ipynb (Swish, 4 hidden layers)."""

    def __init__(self, input_dim: int = 2, time_dim: int = 1, hidden_dim: int = 512) -> None:
        super().__init__()
        self.input_dim, self.time_dim = input_dim, time_dim
        self.main = nn.Sequential(
            nn.Linear(input_dim + time_dim, hidden_dim),
            _Swish(),
            nn.Linear(hidden_dim, hidden_dim),
            _Swish(),
            nn.Linear(hidden_dim, hidden_dim),
            _Swish(),
            nn.Linear(hidden_dim, hidden_dim),
            _Swish(),
            nn.Linear(hidden_dim, input_dim),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        sz = x.size()
        x = x.reshape(-1, self.input_dim)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, self.time_dim).float()
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        return self.main(torch.cat([x, t], dim=1)).reshape(*sz)


class FlowMatching:
    """Meta's flow_matching (PyPI flow-matching): AffineProbPath(CondOTScheduler()) and ODESolver."""

    name = "flow_matching"
    has_ot = False  # no minibatch-OT coupling in the library

    def __init__(self) -> None:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler

        self._path = AffineProbPath(scheduler=CondOTScheduler())

    def _loop(
        self, task: Task, net: nn.Module, *, batch: int, steps: int | None, seconds: float | None
    ) -> tuple[int, float]:
        path = self._path

        def loss_of(x_0: Tensor, x_1: Tensor) -> Tensor:
            t = torch.rand(x_1.shape[0], device=x_1.device)
            path_sample = path.sample(t=t, x_0=x_0, x_1=x_1)
            return torch.pow(net(path_sample.x_t, path_sample.t) - path_sample.dx_t, 2).mean()

        return _peer_loop(task, net, loss_of, batch=batch, steps=steps, seconds=seconds)

    def train_same(
        self,
        task: Task,
        mlp: MLPConfig,
        *,
        batch: int,
        steps: int,
        coupling: str = "independent",
        seed: int = 0,
        device: torch.device,
    ) -> Trained:
        """The same MLP through flow_matching's AffineProbPath(CondOTScheduler())."""
        if coupling != "independent":
            raise ValueError("flow_matching has no minibatch-OT coupling")
        torch.manual_seed(seed)
        net = VelocityMLP(mlp).to(device)
        done, secs = self._loop(task, net, batch=batch, steps=steps, seconds=None)
        return Trained(self.name, net.eval(), _gaussian_x0(device), done, secs)

    def train_recipe(self, task: Task, *, seconds: float, seed: int = 0, device: torch.device) -> Trained:
        """flow_matching's 2-D example: MLP hidden 512 (Swish), Adam lr 1e-3, batch 4096, CondOT path."""
        torch.manual_seed(seed)
        net = _FMExampleMLP().to(device)
        done, secs = self._loop(task, net, batch=4096, steps=None, seconds=seconds)
        trained = Trained(self.name, net.eval(), _gaussian_x0(device), done, secs)
        trained.info["recipe"] = "AffineProbPath(CondOTScheduler()), MLP 512x4 Swish, Adam lr 1e-3, batch 4096"
        return trained

    def sample(self, velocity: Velocity, x0: Tensor, solver: SolverConfig) -> tuple[Tensor, int, int]:
        """flow_matching's ODESolver.sample (torchdiffeq underneath), as in its 2-D example."""
        from flow_matching.solver import ODESolver
        from flow_matching.utils import ModelWrapper

        counted = CountingVelocity(velocity)

        class Wrapped(ModelWrapper):
            def forward(self, x: Tensor, t: Tensor, **extras: Any) -> Tensor:
                return self.model(x, t)

        ode = ODESolver(velocity_model=Wrapped(counted))
        grid = torch.tensor([0.0, 1.0], device=x0.device)
        if solver.method == "dopri5":
            out = ode.sample(
                x_init=x0, step_size=None, method="dopri5", atol=solver.atol, rtol=solver.rtol, time_grid=grid
            )
        else:
            out = ode.sample(x_init=x0, step_size=1.0 / solver.steps, method=solver.method, time_grid=grid)
        return out, round(counted.rows / len(x0)), counted.calls


# --------------------------------------------------------------------------------------------------------


def available_frameworks() -> tuple[list[Any], dict[str, str]]:
    """Instantiate every framework that imports; the dict says why a peer is missing."""
    frameworks: list[Any] = [Flowscope()]
    missing: dict[str, str] = {}
    for cls in (TorchCFM, FlowMatching):
        try:
            frameworks.append(cls())
        except ImportError as exc:  # the peers are benchmark-only, optional dependencies
            missing[cls.name] = f"{type(exc).__name__}: {exc}"
    return frameworks, missing
