"""flowscope side by side with TorchCFM and Meta's flow_matching, in one run on one machine.

    python bench/compare.py [--quick] [--device cpu|cuda] [--out bench/RESULTS.md]
    python bench/compare.py --device cuda --gpu-only --out RESULTS_gpu.md     # GPU figures only
    python bench/compare.py --merge-gpu RESULTS_gpu.md --out bench/RESULTS.md  # paste them into RESULTS.md

Peers are benchmark-only dependencies: `pip install --no-deps -r bench/requirements.txt` (their declared
dependencies would pull another torch; what they import at run time is already a flowscope dependency).
A missing peer is reported and skipped. `--peers-path DIR` adds DIR (e.g. a `pip install --target`
folder) to the import path.

Sections (see RESULTS.md for the protocol of each): training ms/step with independent and minibatch-OT
coupling on the same MLP; the OT pairing's gap to the exact optimum; W2 to fresh data at equal steps
(same MLP) and at equal wall-clock (each framework's documented recipe); sampling NFE and wall time of
dopri5 (atol = rtol = 1e-5) and euler (20 steps); achieved GFLOP/s against this machine's matmul peak;
on a GPU, the exact marginal field on a 200 x 200 grid over 10^5 points.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from flowscope.evaluation.report import DataSampler

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _import_flowscope() -> None:
    """Import flowscope, or load it from this checkout's core/ when the package is not installed
    (e.g. a bare GPU machine that got a copy of the working tree)."""
    try:
        import flowscope  # noqa: F401
    except ImportError:
        import importlib.util

        core = HERE.parent / "core"
        spec = importlib.util.spec_from_file_location(
            "flowscope", core / "__init__.py", submodule_search_locations=[str(core)]
        )
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules["flowscope"] = module
        spec.loader.exec_module(module)


SECTIONS = ("peak", "steps", "gap", "equal_steps", "equal_time", "sampling", "field")
GPU_BEGIN = "<!-- GPU-RESULTS:BEGIN -->"
GPU_END = "<!-- GPU-RESULTS:END -->"
DATASETS = ("moons", "8gaussians", "checkerboard", "8gaussians->moons")
FRAMEWORKS = ("flowscope", "torchcfm", "flow_matching")  # the contestants, in the tables' column order
N_TRAIN = 20_000
N_EVAL = 2_000


@dataclass(frozen=True)
class Plan:
    """How much of everything a mode runs."""

    rounds: int  # alternating rounds for the step timings
    steps_indep: int  # optimiser steps per timing run, independent coupling
    steps_ot: int  # optimiser steps per timing run, OT coupling
    equal_steps: int  # steps of the equal-steps quality comparison
    budget_s: float  # wall-clock budget of the equal-time quality comparison
    sample_sizes: tuple[int, ...]
    sample_rounds: dict[int, int]
    gap_batches: int
    field_points: int
    field_grid: int
    eval_seeds: int = 3  # independent 2,000-sample draws whose W2 is averaged


QUICK = Plan(3, 150, 12, 400, 6.0, (10_000,), {10_000: 3}, 8, 10_000, 100, eval_seeds=2)
FULL = Plan(9, 200, 16, 2_000, 25.0, (10_000, 1_000_000), {10_000: 3, 1_000_000: 1}, 20, 20_000, 100)
SMOKE = Plan(1, 20, 3, 50, 1.0, (1_000,), {1_000: 1}, 2, 1_000, 20, eval_seeds=1)  # checks the wiring only
GPU = Plan(5, 300, 25, 2_000, 10.0, (10_000, 1_000_000), {10_000: 3, 1_000_000: 3}, 20, 100_000, 200)


# --------------------------------------------------------------------------------------------------------
# helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _split(name: str) -> tuple[str, str]:
    """(source dataset or "", target dataset) of a task name such as "8gaussians->moons"."""
    source_name, _, target = name.partition("->")
    return (source_name, target) if target else ("", name)


def data_sampler(name: str) -> DataSampler:
    """sample_data(n, seed): fresh draws of a task's target data, what `flowscope.evaluation` judges against."""
    from flowscope.data.datasets import make_dataset

    target = _split(name)[1]
    return lambda n, seed: make_dataset(target, n, seed)


def make_task(name: str, device: torch.device) -> Any:
    """Training data (seed 0), source (seed 1), evaluation sources (seed 11) and fresh data draws to judge by."""
    from peers import Task

    from flowscope.data.datasets import make_dataset

    source_name, target = _split(name)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(device)

    return Task(
        name=name,
        data=tensor(make_dataset(target, N_TRAIN, seed=0)),
        source=tensor(make_dataset(source_name, N_TRAIN, seed=1)) if source_name else None,
        eval_source=tensor(make_dataset(source_name, 4 * N_EVAL, seed=11)) if source_name else None,
        reference=data_sampler(name),
    )


@functools.cache
def floor_w2(name: str, draws: int) -> float:
    """Noise floor of a task's data: `flowscope.evaluation.report.w2_floor` of N_EVAL points over `draws` draws."""
    from flowscope.evaluation.report import w2_floor

    floor = w2_floor(data_sampler(name), n=N_EVAL, repeats=draws)
    assert floor is not None  # a sampler always gives two independent draws
    return floor


def evaluate_w2(trained: Any, task: Any, seeds: int = 3) -> tuple[float, float, int]:
    """Mean and std over `seeds` draws of W2(N_EVAL samples by dopri5 1e-5, N_EVAL fresh data points); max NFE.

    Draw k of the samples is judged against draw k of the data as `flowscope.evaluation` draws it, so the
    mean is its `w2_to_reference` and compares with its `w2_floor` (`floor_w2`). One 2,000-sample W2 is
    noisy (a few stray samples move it by 10-30% on moons), hence the mean.
    """
    from peers import reference_sample

    from flowscope.evaluation.report import reference_draws, w2_to_reference

    values, nfes = [], []
    for k in range(seeds):
        if task.eval_source is not None:
            x0 = task.eval_source[k * N_EVAL : (k + 1) * N_EVAL]
        else:
            x0 = trained.draw_x0(N_EVAL, torch.Generator().manual_seed(k))
        if trained.sample_fn is not None:
            samples, nfe = trained.sample_fn(x0)
        else:
            with torch.no_grad():
                samples, nfe = reference_sample(trained.velocity, x0, trained.t1)
        data = reference_draws(task.reference, N_EVAL, k)[0]  # the evaluation's draw k of the data
        values.append(w2_to_reference(samples.detach().cpu().numpy(), data, n=N_EVAL, repeats=1))  # inf: not finite
        nfes.append(int(nfe))
    return float(np.mean(values)), float(np.std(values)), max(nfes)


def quality_row(trained: Any, task: Any, plan: Plan) -> dict[str, Any]:
    """What the quality tables show of one trained model: W2 (mean, std over the draws), NFE, training time."""
    distance, spread, nfe = evaluate_w2(trained, task, plan.eval_seeds)
    return {"w2": distance, "w2_std": spread, "nfe": nfe, "seconds": trained.seconds}


# --------------------------------------------------------------------------------------------------------
# sections


def section_peak(device: torch.device, results: dict[str, Any]) -> None:
    from measure import matmul_peak_gflops

    size = 4096 if device.type == "cuda" else 1024
    results["peak"] = {
        "square": matmul_peak_gflops(device, size),
        "square_size": size,
        "layer_256": matmul_peak_gflops(device, 256, 64, 64),
        "layer_512": matmul_peak_gflops(device, 512, 64, 64),
    }
    log(f"matmul peak {results['peak']['square']:.1f} GFLOP/s ({size}^3)")


def section_steps(frameworks: list[Any], device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """ms per optimiser step on the same MLP, alternating frameworks, for each coupling and batch."""
    from measure import alternate, count_flops
    from peers import same_mlp_config

    task = make_task("moons", device)
    mlp = same_mlp_config()
    out: dict[str, Any] = {}
    batches = (256, 512, 4096) if device.type == "cuda" else (256, 512)
    for coupling in ("independent", "ot"):
        for batch in batches:
            if coupling == "ot" and batch > 512:
                continue
            steps = plan.steps_indep if coupling == "independent" else plan.steps_ot

            def run(fw: Any, batch: int = batch, steps: int = steps, coupling: str = coupling) -> tuple[float, Any]:
                trained = fw.train_same(task, mlp, batch=batch, steps=steps, coupling=coupling, device=device)
                return trained.ms_per_step, None

            contestants = {fw.name: functools.partial(run, fw) for fw in frameworks if coupling != "ot" or fw.has_ot}
            # one untimed warm-up call each (allocator, lazy imports, CUDA context)
            for run_one in contestants.values():
                run_one()
            measured = alternate(contestants, plan.rounds)
            key = f"{coupling}/{batch}"
            out[key] = {
                "steps": steps,
                "ms": {name: measured.med(name) for name in contestants},
                "samples": measured.samples,
                "ratio_vs_torchcfm": {
                    name: measured.ratio(name, "torchcfm") for name in contestants if "torchcfm" in contestants
                },
            }
            log(f"train step {key}: " + ", ".join(f"{n} {v:.3f} ms" for n, v in out[key]["ms"].items()))
    # FLOPs of one training step of the same MLP (forward + backward) at each batch
    from flowscope import VelocityMLP
    from flowscope.training.loop import cfm_loss

    net = VelocityMLP(mlp).to(device)
    flops = {}
    for batch in batches:
        x = torch.randn(batch, 2, device=device)
        t = torch.rand(batch, device=device)
        flops[batch] = count_flops(lambda x=x, t=t: cfm_loss(net, x, t, x).backward())
    out["flops_per_step"] = flops
    results["steps"] = out


def section_gap(frameworks: list[Any], device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """Transport cost of each framework's minibatch-OT pairing relative to the exact optimum (ot.emd2)."""
    import ot

    import flowscope

    names = [fw.name for fw in frameworks]
    task = make_task("moons", device)
    gen = torch.Generator().manual_seed(5)
    gaps: dict[str, list[float]] = {"flowscope": []}
    distinct: dict[str, list[float]] = {"flowscope": []}
    sampler = None
    if "torchcfm" in names:
        from torchcfm.optimal_transport import OTPlanSampler

        sampler = OTPlanSampler(method="exact")
        np.random.seed(0)  # noqa: NPY002 - TorchCFM's sampler draws from numpy's global generator
        gaps["torchcfm"], distinct["torchcfm"] = [], []
    batch = 512
    for _ in range(plan.gap_batches):
        x1 = task.data[torch.randint(len(task.data), (batch,), generator=gen).to(device)].cpu().double()
        x0 = torch.randn(batch, 2, generator=gen, dtype=torch.float64)
        cost = ot.dist(x0.numpy(), x1.numpy(), metric="sqeuclidean")
        optimum = float(ot.emd2(np.empty(0), np.empty(0), cost, numItermax=10_000_000))

        def mean_cost(a: torch.Tensor, b: torch.Tensor) -> float:
            return float((a - b).square().sum(dim=1).mean())

        p0, p1 = flowscope.pair(x0, x1, "ot")
        gaps["flowscope"].append(mean_cost(p0, p1) / optimum - 1)
        distinct["flowscope"].append(len(torch.unique(p0, dim=0)) / batch)
        if sampler is not None:
            s0, s1 = sampler.sample_plan(x0, x1)
            gaps["torchcfm"].append(mean_cost(s0, s1) / optimum - 1)
            distinct["torchcfm"].append(len(torch.unique(s0, dim=0)) / batch)
    results["gap"] = {
        "batch": batch,
        "batches": plan.gap_batches,
        "mean_gap": {k: float(np.mean(v)) for k, v in gaps.items()},
        "max_abs_gap": {k: float(np.max(np.abs(v))) for k, v in gaps.items()},
        "distinct_sources": {k: float(np.mean(v)) for k, v in distinct.items()},
    }
    log("OT gap: " + ", ".join(f"{k} {v:+.2e}" for k, v in results["gap"]["mean_gap"].items()))


def section_equal_steps(frameworks: list[Any], device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """Same MLP, batch, optimiser and number of steps: W2 to fresh data, alternating frameworks."""
    from peers import same_mlp_config

    mlp = same_mlp_config()
    out: dict[str, Any] = {}
    for name in DATASETS:
        task = make_task(name, device)
        row: dict[str, Any] = {"floor": floor_w2(name, plan.eval_seeds)}
        for fw in frameworks:
            trained = fw.train_same(task, mlp, batch=256, steps=plan.equal_steps, device=device)
            row[fw.name] = {**quality_row(trained, task, plan), "ms_per_step": trained.ms_per_step}
            if fw.name == "flowscope" and name == "moons":
                results["sampling_model"] = trained.info["flow"].net
        out[name] = row
        log(
            f"equal steps {name}: floor {row['floor']:.4f}, "
            + ", ".join(f"{fw.name} {row[fw.name]['w2']:.4f}" for fw in frameworks)
        )
    results["equal_steps"] = out


def section_equal_time(frameworks: list[Any], device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """Each framework's documented recipe, trained until the same wall-clock budget is spent."""
    out: dict[str, Any] = {"budget_s": plan.budget_s}
    recipes: dict[str, str] = {}
    contestants = list(frameworks)
    for i, name in enumerate(DATASETS):
        task = make_task(name, device)
        row: dict[str, Any] = {"floor": floor_w2(name, plan.eval_seeds)}
        order = contestants[i % len(contestants) :] + contestants[: i % len(contestants)]
        for fw in order:
            trained = fw.train_recipe(task, seconds=plan.budget_s, device=device)
            row[fw.name] = {**quality_row(trained, task, plan), "steps": trained.steps}
            recipes[fw.name] = trained.info.get("recipe", "")
        out[name] = row
        log(
            f"equal time {name}: floor {row['floor']:.4f}, "
            + ", ".join(
                f"{fw.name} {row[fw.name]['w2']:.4f} ({row[fw.name]['steps']} steps, NFE {row[fw.name]['nfe']})"
                for fw in contestants
            )
        )
    out["recipes"] = recipes
    results["equal_time"] = out


def _sampling_net(results: dict[str, Any], device: torch.device, plan: Plan) -> torch.nn.Module:
    """The velocity net every sampler integrates: flowscope's same-MLP model of the equal-steps run on moons."""
    net = results.get("sampling_model")
    if net is None:
        from peers import Flowscope, same_mlp_config

        trained = Flowscope().train_same(
            make_task("moons", device), same_mlp_config(), batch=256, steps=plan.equal_steps, device=device
        )
        net = trained.info["flow"].net
    return net.to(device).eval()


def section_sampling(frameworks: list[Any], device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """NFE and wall time of each framework's sampling route on one and the same velocity net."""
    from measure import alternate, clock

    from flowscope import SolverConfig

    net = _sampling_net(results, device, plan)
    solvers = {"dopri5 1e-5": SolverConfig("dopri5", atol=1e-5, rtol=1e-5), "euler 20": SolverConfig("euler", steps=20)}
    out: dict[str, Any] = {}
    for n in plan.sample_sizes:
        x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(7)).to(device)
        for label, solver in solvers.items():
            contestants = {}
            for fw in frameworks:

                def run(fw: Any = fw, x0: torch.Tensor = x0, solver: Any = solver) -> tuple[float, Any]:
                    with torch.no_grad():
                        seconds, (samples, nfe, calls) = clock(lambda: fw.sample(net, x0, solver), device)
                    return seconds, (nfe, calls, samples[:2000].cpu())

                contestants[fw.name] = run
            measured = alternate(contestants, plan.sample_rounds.get(n, 1))
            key = f"{label}/{n}"
            ref = measured.extras["flowscope"][-1][2]
            out[key] = {
                name: {
                    "seconds": measured.med(name),
                    "nfe": measured.extras[name][-1][0],
                    "calls": measured.extras[name][-1][1],
                    "max_abs_diff_vs_flowscope": float((measured.extras[name][-1][2] - ref).abs().max()),
                }
                for name in contestants
            }
            log(f"sampling {key}: " + ", ".join(f"{k} {v['seconds']:.3f}s NFE {v['nfe']}" for k, v in out[key].items()))
    results["sampling"] = out


def section_field(device: torch.device, plan: Plan, results: dict[str, Any]) -> None:
    """Exact marginal field (flowscope.fields.marginal_field) on a grid over many data points."""
    from measure import median, repeat

    try:
        from flowscope import make_path
        from flowscope.data.datasets import make_dataset
        from flowscope.fields.exact import marginal_field
        from flowscope.maths.grid import grid_2d
    except ImportError as exc:
        results["field"] = {"error": f"flowscope.fields unavailable: {exc}"}
        log(results["field"]["error"])
        return
    data = torch.from_numpy(make_dataset("checkerboard", plan.field_points, seed=0)).to(device)
    grid = grid_2d((-5.0, 5.0), (-5.0, 5.0), plan.field_grid, device=device).points
    path = make_path("ot")
    rows = {}
    marginal_field(path, data, grid[:16], 0.5)  # warm-up
    for t in (0.1, 0.5, 0.9, 0.99):
        rows[t] = median(repeat(lambda _, t=t: marginal_field(path, data, grid, t), 3, device=device))
    pairs = plan.field_points * len(grid)
    results["field"] = {
        "points": plan.field_points,
        "grid": plan.field_grid,
        "seconds": rows,
        "gpairs_per_s": {t: pairs / s / 1e9 for t, s in rows.items()},
    }
    log("marginal field: " + ", ".join(f"t={t} {s * 1e3:.1f} ms" for t, s in rows.items()))


# --------------------------------------------------------------------------------------------------------
# report


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    info = results["machine"]
    lines = [
        "# flowscope vs TorchCFM vs flow_matching" + (" (GPU)" if args.gpu_only else ""),
        "",
        "Regenerate: `" + results["command"] + "`",
        "",
        table(["", ""], [[k, v] for k, v in info.items()]),
        "",
    ]
    if results.get("reruns"):
        lines += ["Sections re-run after the main run (`--only`): " + "; ".join(results["reruns"]), ""]
    if results.get("missing"):
        lines += [
            "Peers not importable (skipped): " + "; ".join(f"{k}: {v}" for k, v in results["missing"].items()),
            "",
        ]
    lines += headline(results), ""
    lines += details(results)
    return "\n".join(lines).rstrip() + "\n"


def headline(results: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    steps = results.get("steps", {})
    for key in ("independent/256", "independent/512", "independent/4096"):
        if key in steps and "torchcfm" in steps[key]["ms"]:
            r = steps[key]["ratio_vs_torchcfm"]
            rows.append(
                [
                    f"train step, same MLP, batch {key.split('/')[1]}: flowscope / TorchCFM time",
                    fmt(r["flowscope"]),
                    "<= 1.0",
                    verdict(r["flowscope"] <= 1.0),
                ]
            )
    for key in ("ot/256", "ot/512"):
        if key in steps and "torchcfm" in steps[key]["ms"]:
            r = steps[key]["ratio_vs_torchcfm"]
            speed = 1 / r["flowscope"]
            target = ">= 2x" if key.endswith("512") else "(info)"
            rows.append(
                [
                    f"minibatch-OT step, batch {key.split('/')[1]}: TorchCFM / flowscope time (speed-up)",
                    f"{fmt(speed)}x",
                    target,
                    verdict(speed >= 2.0) if key.endswith("512") else "",
                ]
            )
    gap = results.get("gap")
    if gap:
        g = gap["max_abs_gap"]["flowscope"]
        rows.append(
            [
                f"OT pairing cost gap to the exact optimum (max over {gap['batches']} batches of 512)",
                f"{g * 100:.2g}%",
                "<= 0.1%",
                verdict(g <= 1e-3),
            ]
        )
    eq = results.get("equal_time")
    if eq:
        for name in DATASETS:
            row = eq.get(name)
            if not row:
                continue
            peers = {k: v["w2"] for k, v in row.items() if isinstance(v, dict) and not k.startswith("flowscope")}
            if not peers:
                continue
            best_name = min(peers, key=peers.get)
            ratio = row["flowscope"]["w2"] / peers[best_name]
            rows.append(
                [
                    f"W2 at equal wall-clock ({fmt(eq['budget_s'])} s), {name}: flowscope / best peer ({best_name})",
                    fmt(ratio),
                    "< 1.0",
                    verdict(ratio < 1.0),
                ]
            )
        nfes = {k: [eq[d][k]["nfe"] for d in DATASETS if d in eq and k in eq[d]] for k in ("flowscope", "torchcfm")}
        if nfes["flowscope"] and nfes["torchcfm"]:
            ratio = float(np.mean(nfes["flowscope"])) / float(np.mean(nfes["torchcfm"]))
            rows.append(
                [
                    "dopri5 (1e-5) NFE of the equal-time models, mean over datasets: flowscope / TorchCFM",
                    fmt(ratio),
                    "(info: sampling cost)",
                    "",
                ]
            )
    st = results.get("steps", {})
    peak = results.get("peak")
    if peak and "independent/512" in st:
        ms = st["independent/512"]["ms"]["flowscope"]
        gflops = st["flops_per_step"][512] / (ms / 1e3) / 1e9
        rows.append(
            [
                f"achieved GFLOP/s of a flowscope step (batch 512) / matmul peak ({fmt(peak['square'])} GFLOP/s)",
                f"{gflops / peak['square'] * 100:.2g}%",
                "(info)",
                "",
            ]
        )
    if not rows:
        return ""
    return "## Headline (ratios)\n\n" + table(["criterion", "flowscope as shipped", "target", "verdict"], rows)


def details(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    steps = results.get("steps")
    if steps:
        timed = {n for k, v in steps.items() if "/" in k for n in v["ms"]}
        names = [n for n in FRAMEWORKS if n in timed]
        rows = []
        for key, v in steps.items():
            if "/" not in key:
                continue
            coupling, batch = key.split("/")
            rows.append(
                [coupling, batch, v["steps"]]
                + [fmt(v["ms"].get(n, float("nan"))) for n in names]
                + [fmt(v["ratio_vs_torchcfm"].get("flowscope", float("nan")))]
            )
        out += [
            "## Training step (same MLP)",
            "",
            "MLP on concat(x, t): 2+1 -> 64 -> 64 -> 64 -> 2, SELU (TorchCFM's 2-D MLP, built as "
            "`VelocityMLP(MLPConfig(width=64, depth=3, activation='selu', time_features=0, fourier_features=0))` "
            "for all); Adam lr 1e-3 constant, no clipping; data: moons, 20,000 points; source N(0, I). flowscope runs "
            "`flowscope.train` (its EMA and normalisation included, its loop timed by `TrainResult.seconds`); "
            "TorchCFM runs its `ConditionalFlowMatcher(sigma=0)` / `ExactOptimalTransportConditionalFlowMatcher"
            "(sigma=0)` loop; flow_matching its `AffineProbPath(CondOTScheduler())` loop (it has no OT coupling). "
            "Median ms per step over alternating rounds; ratio = median of per-round flowscope/TorchCFM ratios.",
            "",
            table(["coupling", "batch", "steps/run"] + [f"{n} ms" for n in names] + ["flowscope/TorchCFM"], rows),
            "",
        ]
        peak = results.get("peak")
        if peak:
            prow = []
            for batch, flops in steps["flops_per_step"].items():
                key = f"independent/{batch}"
                if key not in steps:
                    continue
                for n in names:
                    ms = steps[key]["ms"].get(n)
                    if ms:
                        g = flops / (ms / 1e3) / 1e9
                        layer_peak = peak.get(f"layer_{batch}")
                        prow.append(
                            [
                                batch,
                                n,
                                f"{flops / 1e6:.1f}",
                                fmt(g),
                                f"{g / peak['square'] * 100:.2g}%",
                                f"{g / layer_peak * 100:.2g}%" if layer_peak else "n/a",
                            ]
                        )
            out += [
                "### Achieved GFLOP/s vs this machine's matmul peak",
                "",
                f"Peak measured in this run: {fmt(peak['square'])} GFLOP/s for a float32 {peak['square_size']}^3 "
                f"matmul; {fmt(peak['layer_256'])} / {fmt(peak['layer_512'])} GFLOP/s for the hidden layer's own shape "
                "(256 x 64 @ 64 x 64 and 512 x 64 @ 64 x 64). FLOPs per step counted by "
                "`torch.utils.flop_counter.FlopCounterMode` (forward + backward of the MLP).",
                "",
                table(["batch", "framework", "MFLOP/step", "GFLOP/s", "of square peak", "of layer-shape peak"], prow),
                "",
            ]
    gap = results.get("gap")
    if gap:
        rows = [
            [
                k,
                f"{gap['mean_gap'][k] * 100:+.3g}%",
                f"{gap['max_abs_gap'][k] * 100:.3g}%",
                f"{gap['distinct_sources'][k] * 100:.0f}%",
            ]
            for k in gap["mean_gap"]
        ]
        out += [
            "## Minibatch-OT pairing quality",
            "",
            f"{gap['batches']} batches of {gap['batch']} (x0 ~ N(0, I), x1 from moons), float64; optimum = "
            "`ot.emd2`. TorchCFM samples pairs *with replacement* from the plan, so its cost fluctuates around "
            "the optimum and part of the source batch is dropped (distinct sources < 100%); flowscope returns a "
            "permutation (every point used once).",
            "",
            table(["pairing", "mean cost gap", "max abs gap", "distinct sources"], rows),
            "",
        ]
    for key, title, note in (
        (
            "equal_steps",
            "W2 at equal steps (same MLP)",
            "Same MLP as above, batch 256, Adam lr 1e-3 constant; steps = {steps}. flowscope keeps its EMA (0.999) "
            "and data normalisation; TorchCFM sigma = 0. 20,000 training points; W2 = exact EMD between 2,000 samples "
            "(dopri5, atol = rtol = 1e-5) and 2,000 fresh data points, mean ± std over {seeds} independent draws of "
            "both (`flowscope.evaluation`'s draws); floor = `flowscope.evaluation.report.w2_floor`, the mean W2 "
            "between "
            "{seeds} pairs of independent 2,000-point draws of the data.",
        ),
        (
            "equal_time",
            "W2 at equal wall-clock (documented recipes)",
            "Each framework's documented 2-D recipe trained until a {budget} s budget is spent (flowscope stops "
            "earlier if its default number of steps finishes first). Recipes: {recipes}. Evaluation as above.",
        ),
    ):
        block = results.get(key)
        if not block:
            continue
        fws = [n for n in FRAMEWORKS if n in block.get(DATASETS[0], {})]
        rows = []
        for name in DATASETS:
            r = block.get(name)
            if not r:
                continue
            cells = [name, fmt(r["floor"], 3)]
            for n in fws:
                v = r[n]
                extra = f", {v['steps']} steps in {v['seconds']:.0f} s" if "steps" in v else ""
                spread = f" ± {v['w2_std']:.3f}" if "w2_std" in v else ""
                cells.append(f"{v['w2']:.4f}{spread} ({v['w2'] / r['floor']:.2f}x floor, NFE {v['nfe']}{extra})")
            rows.append(cells)
        recipes = "; ".join(f"{k}: {v}" for k, v in block.get("recipes", {}).items() if k in FRAMEWORKS)
        out += [
            f"## {title}",
            "",
            note.format(
                steps=results.get("plan", {}).get("equal_steps"),
                seeds=results.get("plan", {}).get("eval_seeds", 1),
                budget=fmt(block.get("budget_s", 0)),
                recipes=recipes,
            ),
            "",
            table(["dataset", "floor"] + [f"{n} W2" for n in fws], rows),
            "",
        ]
    sampling = results.get("sampling")
    if sampling:
        rows = []
        for key, v in sampling.items():
            label, n = key.rsplit("/", 1)
            base = v["flowscope"]["seconds"]
            for name, m in v.items():
                rows.append(
                    [
                        label,
                        f"{int(n):,}",
                        name,
                        m["nfe"],
                        m["calls"],
                        fmt(m["seconds"]),
                        fmt(m["seconds"] / base),
                        f"{m['max_abs_diff_vs_flowscope']:.1e}",
                    ]
                )
        out += [
            "## Sampling cost",
            "",
            "One velocity net (flowscope's same-MLP model of the equal-steps run on moons) integrated from the "
            "same N(0, I) points by each framework's sampling route: `flowscope.integrate` (torchdiffeq, in "
            "chunks of 65,536 rows), TorchCFM's examples' `torchdiffeq.odeint`, flow_matching's `ODESolver.sample`. "
            "NFE = velocity evaluations per sample (counted by a wrapper); calls = batched velocity calls.",
            "",
            table(["solver", "samples", "framework", "NFE", "calls", "seconds", "vs flowscope", "max |diff|"], rows),
            "",
        ]
    field = results.get("field")
    if field:
        if "error" in field:
            out += ["## Exact marginal field", "", field["error"], ""]
        else:
            rows = [[t, fmt(s * 1e3), fmt(field["gpairs_per_s"][t])] for t, s in field["seconds"].items()]
            out += [
                "## Exact marginal field",
                "",
                f"`flowscope.fields.marginal_field` (OT path) on a {field['grid']} x {field['grid']} grid over "
                f"{field['points']:,} checkerboard points (median of 3).",
                "",
                table(["t", "ms", "G point-pairs/s"], rows),
                "",
            ]
    return out


def merge_gpu(out: Path, gpu_file: Path) -> None:
    """Paste a --gpu-only report between the GPU markers of `out`."""
    text = out.read_text(encoding="utf-8")
    body = gpu_file.read_text(encoding="utf-8").strip()
    body = re.sub(r"^(#+) ", lambda m: "##" + m.group(1) + " ", body, flags=re.M)  # nest under "## GPU"
    start, end = text.index(GPU_BEGIN) + len(GPU_BEGIN), text.index(GPU_END)
    out.write_text(text[:start] + "\n" + body + "\n" + text[end:], encoding="utf-8")


def gpu_block(previous: str | None) -> str:
    """The GPU section: kept from the previous RESULTS.md if it was filled in, else a placeholder."""
    if previous and GPU_BEGIN in previous and GPU_END in previous:
        inner = previous[previous.index(GPU_BEGIN) + len(GPU_BEGIN) : previous.index(GPU_END)]
        return GPU_BEGIN + inner + GPU_END
    return (
        GPU_BEGIN + "\n_Not yet recorded. On a machine with a GPU:_\n\n"
        "```\npython bench/compare.py --device cuda --gpu-only --out RESULTS_gpu.md\n"
        "python bench/compare.py --merge-gpu RESULTS_gpu.md --out bench/RESULTS.md\n```\n" + GPU_END
    )


# --------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller run (< 4 minutes on 2 CPU cores)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--gpu-only",
        action="store_true",
        help="only the GPU parts: training steps, sampling 10^6, marginal field, peak (needs CUDA)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: stable on a shared machine; 0 = torch's default)",
    )
    parser.add_argument("--peers-path", type=Path, default=None, help="extra import path for the peers")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections to re-run into an existing --json ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-render --out from the raw numbers of an earlier --json run (no benchmarking)",
    )
    parser.add_argument(
        "--merge-gpu", type=Path, default=None, help="paste this --gpu-only report into --out's GPU section and exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge_gpu is not None:
        merge_gpu(args.out, args.merge_gpu)
        log(f"merged {args.merge_gpu} into {args.out}")
        return 0
    if args.from_json is not None:
        results = _load_json(args.from_json)
        args.gpu_only = results.get("gpu_only", False)
        write_report(results, args)
        return 0
    if args.gpu_only and args.device != "cuda":
        print("error: --gpu-only needs --device cuda", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: --device cuda requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); run on a machine with a GPU "
            "and a CUDA build of torch",
            file=sys.stderr,
        )
        return 2
    if args.peers_path is not None:
        sys.path.insert(0, str(args.peers_path.resolve()))
    _import_flowscope()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    plan = SMOKE if args.smoke else GPU if args.gpu_only else (QUICK if args.quick else FULL)

    from measure import Stopwatch, machine_info
    from peers import available_frameworks

    frameworks, missing = available_frameworks()
    for name, why in missing.items():
        log(f"peer {name} skipped: {why}")
    command = (
        "python bench/compare.py"
        + (" --quick" if args.quick else "")
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (" --gpu-only" if args.gpu_only else "")
        + (f" --threads {args.threads}" if args.threads != 1 else "")
    )
    results: dict[str, Any] = {
        "machine": machine_info(device),
        "missing": missing,
        "command": command,
        "plan": plan.__dict__,
        "gpu_only": args.gpu_only,
    }
    watch = Stopwatch()
    wanted = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.only:
        if args.json is None or not args.json.exists():
            print("error: --only re-runs some sections of an earlier run: give its --json file", file=sys.stderr)
            return 2
        previous = _load_json(args.json)
        machine = results["machine"]
        load = machine["load average (1 min) at start"]
        previous.setdefault("reruns", []).append(f"{', '.join(sorted(wanted))} re-run {machine['date']} (load {load})")
        results = {**previous, "plan": plan.__dict__}
    if "peak" in wanted:
        section_peak(device, results)
    if "steps" in wanted:
        section_steps(frameworks, device, plan, results)
    if "gap" in wanted:
        section_gap(frameworks, device, plan, results)
    if not args.gpu_only and "equal_steps" in wanted:
        section_equal_steps(frameworks, device, plan, results)
    if not args.gpu_only and "equal_time" in wanted:
        section_equal_time(frameworks, device, plan, results)
    if "sampling" in wanted:
        section_sampling(frameworks, device, plan, results)
    if (args.gpu_only or not args.quick) and "field" in wanted:
        section_field(device, plan, results)
    if not args.only:
        results["machine"]["benchmark wall time"] = f"{watch.elapsed():.0f} s"

    results.pop("sampling_model", None)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    write_report(results, args)
    return 0


def _load_json(path: Path) -> dict[str, Any]:
    """Raw numbers of an earlier run, with the numeric dict keys JSON turned into strings restored."""
    results = json.loads(path.read_text(encoding="utf-8"))
    steps = results.get("steps")
    if steps and "flops_per_step" in steps:
        steps["flops_per_step"] = {int(k): v for k, v in steps["flops_per_step"].items()}
    field = results.get("field")
    if field and "seconds" in field:
        field["seconds"] = {float(k): v for k, v in field["seconds"].items()}
        field["gpairs_per_s"] = {float(k): v for k, v in field["gpairs_per_s"].items()}
    return results


def write_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Markdown report to args.out; a full report keeps the filled GPU section and appends bench/NOTES.md."""
    report = render(results, args)
    if not args.gpu_only:
        previous = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        report += "\n## GPU\n\n" + gpu_block(previous) + "\n"
        notes = HERE / "NOTES.md"
        if notes.exists():
            report += "\n" + notes.read_text(encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
