"""Issue 18's figures in one run: the default training's cost against TorchCFM's, the OT coupling's cost,
the exact marginal field's latency.

    python bench/bench_cost.py [--datasets moons 8gaussians checkerboard] [--out bench/results_cost.md]

1. Default recipe: `flowscope train --dataset D --path ot` with its defaults, evaluation included, in a
   fresh process (start-up counted), against TorchCFM's 2-D recipe in a fresh process (MLP(dim=2,
   time_varying=True): 3 x 64 SELU, ConditionalFlowMatcher(sigma=0.1), Adam lr 1e-3, batch 512, 20,000
   steps; start-up counted, no evaluation). Run alternately, same machine, same data (20,000 points, seed 0).
   W2 / floor: flowscope's as its CLI prints it (`flowscope.evaluation.evaluate`: dopri5 1e-5, 10 draws of
   2,000 samples against fresh data); TorchCFM's model sampled with the same solver and judged by the same
   `sample_quality` (10 draws, same reference draws and floor).
2. OT coupling: ms per step of `flowscope.train` (default model and recipe, batch 512, its prefetch of the
   pairs on worker threads) with independent pairs and with minibatch OT over blocks of 64 / 128 rows and
   over the whole batch, in alternating rounds; then the straightness, NFE and W2 / floor of default-recipe
   trainings of QUALITY_STEPS steps with each coupling (N(0, I) -> moons on the OT path; 8gaussians -> moons
   on I-CFM, sigma 0.02).
3. Exact marginal field: `flowscope.fields.marginal_field` of 10,000 points on a 40 x 40 grid, median
   ms, against the implementation before issue 18 (core/fields.py at commit 86290f5, loaded
   beside it), same inputs, same process, alternating calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from measure import alternate, machine_info, median
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
TORCHCFM_STEPS, TORCHCFM_BATCH = 20000, 512
CHILD = "--torchcfm-child"
#: Steps of the coupling-quality trainings (the default recipe otherwise): whole-batch OT costs ~30 ms a step.
QUALITY_STEPS = 2000


def torchcfm_child(dataset: str, out: str) -> None:
    """TorchCFM's 2-D recipe, as its examples write it; saves the weights for the parent to judge."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
    from torchcfm.models.models import MLP

    from flowscope.data.datasets import make_dataset

    torch.manual_seed(0)
    data = torch.from_numpy(make_dataset(dataset, 20000, seed=0)).float()
    model = MLP(dim=2, time_varying=True)
    optimizer = torch.optim.Adam(model.parameters())
    fm = ConditionalFlowMatcher(sigma=0.1)
    for _ in range(TORCHCFM_STEPS):
        optimizer.zero_grad()
        x1 = data[torch.randint(len(data), (TORCHCFM_BATCH,))]
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        torch.mean((vt - ut) ** 2).backward()
        optimizer.step()
    save_file(model.state_dict(), out)


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def _torchcfm_quality(dataset: str, weights: str) -> dict[str, Any]:
    from torchcfm.models.models import MLP

    from flowscope import integrate
    from flowscope.data.datasets import make_dataset
    from flowscope.evaluation.report import QUALITY_DRAWS, REFERENCE_SOLVER, sample_quality

    model = MLP(dim=2, time_varying=True)
    model.load_state_dict(load_file(weights))
    model.eval()

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        return model(torch.cat([x, t], dim=-1))

    x0 = torch.randn(2000 * QUALITY_DRAWS, 2, generator=torch.Generator().manual_seed(10_001))
    result = integrate(velocity, x0, solver=REFERENCE_SOLVER)
    report = sample_quality(result.samples.numpy(), lambda n, s: make_dataset(dataset, n, s), seed=0)
    return {"w2_ratio": report.w2_ratio, "nfe": result.nfe}


def section_default(datasets: list[str], folder: Path, save: Any) -> list[dict[str, Any]]:
    """Wall clock of the default CLI training (evaluation included) and of TorchCFM's recipe, alternately;
    `save(rows)` after each dataset, so that a long run on a loaded machine keeps what it measured."""
    rows: list[dict[str, Any]] = []
    for i, dataset in enumerate(datasets):
        out = folder / f"{dataset}.safetensors"
        flowscope_cmd = [sys.executable, "-c", "import sys; from flowscope.cli.commands import main; sys.exit(main())",
                         "train", "--dataset", dataset, "--path", "ot", "--quiet", "--out", str(out)]
        weights = str(folder / f"{dataset}-torchcfm.safetensors")
        torchcfm_cmd = [sys.executable, str(Path(__file__).resolve()), CHILD, dataset, weights]
        runs: dict[str, tuple[float, str]] = {}
        for name in (["flowscope", "torchcfm"] if i % 2 == 0 else ["torchcfm", "flowscope"]):
            runs[name] = _timed(flowscope_cmd if name == "flowscope" else torchcfm_cmd)
            print(f"  {dataset} {name}: {runs[name][0]:.1f} s", flush=True)
        metrics = json.loads(runs["flowscope"][1].strip().splitlines()[-1])
        peer = _torchcfm_quality(dataset, weights)
        rows.append({"dataset": dataset, "flowscope_s": runs["flowscope"][0], "torchcfm_s": runs["torchcfm"][0],
                     "ratio": runs["flowscope"][0] / runs["torchcfm"][0], "flowscope_w2_ratio": metrics["w2_ratio"],
                     "flowscope_nfe": metrics["nfe_dopri5"], "torchcfm_w2_ratio": peer["w2_ratio"],
                     "torchcfm_nfe": peer["nfe"]})
        save(rows)
    return rows


def _ot_task(name: str) -> tuple[torch.Tensor, torch.Tensor | None, Any, str, Any]:
    from flowscope.data.datasets import make_dataset
    from flowscope.maths.paths import make_path

    data = torch.from_numpy(make_dataset("moons", 20000, seed=0))
    if name == "N(0,I)->moons":
        return data, None, "ot", "moons", lambda n, s: make_dataset("moons", n, s)
    source = torch.from_numpy(make_dataset("8gaussians", 20000, seed=1))
    return data, source, make_path("icfm", sigma=0.02), "moons", lambda n, s: make_dataset("moons", n, s)


#: coupling name -> (coupling, ot_block)
OT_OPTIONS = {"independent": ("independent", 0), "ot, blocks of 64 (default)": ("ot", 64),
              "ot, blocks of 128": ("ot", 128), "ot, whole batch of 512": ("ot", 0)}


def section_ot_steps(rounds: int) -> dict[str, Any]:
    """ms per step of the default recipe at batch 512 under each coupling, alternating rounds."""
    import flowscope
    from flowscope import TrainConfig

    data, _, _, _, _ = _ot_task("N(0,I)->moons")

    def contestant(coupling: str, block: int) -> Any:
        steps = 128 if block == 0 and coupling == "ot" else 640

        def run() -> tuple[float, Any]:
            config = TrainConfig(steps=steps, ot_block=block, seed=0, device="cpu")
            result = flowscope.train(data, config=config, coupling=coupling)
            return 1e3 * result.seconds / steps, None

        return run

    timed = alternate({name: contestant(*option) for name, option in OT_OPTIONS.items()}, rounds)
    return {name: {"ms": timed.med(name), "vs_independent": timed.ratio(name, "independent")}
            for name in OT_OPTIONS}


def section_ot_quality(options: list[str]) -> list[dict[str, Any]]:
    """Straightness, NFE and W2 / floor of a default-recipe training under each coupling, for two tasks."""
    import flowscope
    from flowscope import TrainConfig
    from flowscope.evaluation.report import evaluate

    rows = []
    for task in ("N(0,I)->moons", "8gaussians->moons"):
        data, source, path, _, reference = _ot_task(task)
        for name in options:
            coupling, block = OT_OPTIONS[name]
            config = TrainConfig(steps=QUALITY_STEPS, ot_block=block, seed=0, device="cpu")
            result = flowscope.train(data, path=path, config=config, source=source, coupling=coupling)
            report = evaluate(result.model, reference, seed=0, nll_points=0)
            rows.append({"task": task, "coupling": name, "train_s": result.seconds,
                         "straightness": report.straightness, "nfe": report.nfe, "w2_ratio": report.w2_ratio})
            print(f"  {task} {name}: S {report.straightness:.3f} NFE {report.nfe} "
                  f"W2/floor {report.w2_ratio:.3f} ({result.seconds:.0f} s)", flush=True)
    return rows


def _fields_before() -> Any:
    """core/fields.py as it was before issue 18 (git), loaded as a sibling module of flowscope."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(HERE.parent), "show", "86290f5:core/fields.py"], check=True,
                            capture_output=True, text=True).stdout
    import flowscope

    file = Path(flowscope.__path__[0]) / "fields" / "exact.py"
    spec = importlib.util.spec_from_loader("flowscope.fields_before_issue18", loader=None, origin=str(file))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "flowscope"
    sys.modules[spec.name] = module
    exec(compile(source, "fields_before.py", "exec"), module.__dict__)  # noqa: S102 - our own file, from git
    return module


def section_field(rounds: int) -> list[dict[str, Any]]:
    """Median ms of the marginal field (10,000 points, 40 x 40 grid) now and before, per t."""
    from flowscope.fields import exact as fields
    from flowscope.maths.grid import grid_2d
    from flowscope.maths.paths import OTPath

    before = _fields_before()
    data = torch.randn(10000, 2, generator=torch.Generator().manual_seed(0))
    grid = grid_2d((-3.0, 3.0), (-3.0, 3.0), 40).points
    path = OTPath()
    rows = []
    default_threads = torch.get_num_threads()
    for threads, t in [(1, t) for t in (0.1, 0.5, 0.9, 0.99)] + [(default_threads, 0.5)]:
        torch.set_num_threads(threads)

        def timer(module: Any, t: float = t) -> Any:
            def run() -> tuple[float, Any]:
                start = time.perf_counter()
                module.marginal_field(path, data, grid, t)
                return 1e3 * (time.perf_counter() - start), None
            return run

        for module in (fields, before):
            for _ in range(3):
                module.marginal_field(path, data, grid, t)
        timed = alternate({"now": timer(fields), "before": timer(before)}, rounds)
        exact = before.marginal_field(path, data.double(), grid.double(), t).velocity
        error = float((fields.marginal_field(path, data, grid, t).velocity.double() - exact).abs().max())
        error_before = float((before.marginal_field(path, data, grid, t).velocity.double() - exact).abs().max())
        rows.append({"threads": threads, "t": t, "now_ms": timed.med("now"), "before_ms": timed.med("before"),
                     "speedup": 1.0 / timed.ratio("now", "before"), "max_err": error, "max_err_before": error_before})
    torch.set_num_threads(default_threads)
    return rows


def render(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = ["# Training cost (issue 18): `bench/bench_cost.py`", "",
             f"Regenerate: `python bench/bench_cost.py` ({results['seconds']:.0f} s this run). "
             f"{info['date']}, {info['cpu']}, torch {info['torch']}, torchcfm {info['torchcfm']}. "
             f"Load average (1 min) {results['load_start']:.1f} at the start, {results['load_end']:.1f} at the end: "
             "the 2-core machine is shared with other jobs, so compare the ratios (measured side by side), "
             "not the seconds.", ""]
    lines += ["## 1. Default recipe against TorchCFM's", "",
              "`flowscope train --dataset D --path ot` (defaults: MLP width 64, depth 3, 32 Fourier features; "
              "6,000 steps, batch 512, AdamW 3e-3 cosine, EMA 0.999; then its evaluation) against TorchCFM's 2-D "
              "recipe (3 x 64 SELU MLP, sigma 0.1, Adam 1e-3, batch 512, 20,000 steps), each a fresh process "
              "timed from start to exit, run one after the other. W2 / floor: 10 draws of 2,000 dopri5 (1e-5) "
              "samples against fresh data, the same protocol for both.", "",
              "| dataset | flowscope s | TorchCFM s | flowscope / TorchCFM | W2/floor flowscope (NFE) | "
              "W2/floor TorchCFM (NFE) |", "|---|---|---|---|---|---|"]
    for r in results.get("default", []):
        lines.append(f"| {r['dataset']} | {r['flowscope_s']:.1f} | {r['torchcfm_s']:.1f} | **{r['ratio']:.2f}** | "
                     f"{r['flowscope_w2_ratio']:.3f} ({r['flowscope_nfe']}) | {r['torchcfm_w2_ratio']:.3f} "
                     f"({r['torchcfm_nfe']}) |")
    lines += ["", "## 2. Minibatch-OT coupling: cost of a step", "",
              "`flowscope.train` with the default model and recipe at batch 512 (N(0, I) -> moons), pairs solved "
              "ahead on worker threads as in every training; median ms per step over alternating rounds, ratio = "
              "median of the per-round ratios to the independent step.", "",
              "| coupling | ms / step | / independent step |", "|---|---|---|"]
    for name, r in results.get("ot_steps", {}).items():
        lines.append(f"| {name} | {r['ms']:.2f} | **{r['vs_independent']:.2f}** |")
    lines += ["", f"Quality of default-recipe trainings ({QUALITY_STEPS:,} steps) under each coupling "
              "(straightness S = int E||(x1 - x0) - v||^2 dt over 1,000 trajectories; NFE of dopri5 1e-5; "
              "W2 / floor as above):", "",
              "| task | coupling | train s | straightness | NFE | W2 / floor |", "|---|---|---|---|---|---|"]
    for r in results.get("ot_quality", []):
        lines.append(f"| {r['task']} | {r['coupling']} | {r['train_s']:.0f} | {r['straightness']:.3f} | {r['nfe']} | "
                     f"{r['w2_ratio']:.3f} |")
    lines += ["", "## 3. Exact marginal field", "",
              "`flowscope.fields.marginal_field(OTPath(), data [10,000, 2], grid 40 x 40, t)`, float32, "
              "median ms over alternating calls; before = core/fields.py before issue 18. Max error: largest "
              "|u - u_float64| over the grid (the float64 field of the same formula).", "",
              "| torch threads | t | now ms | before ms | speed-up | max error now | max error before |",
              "|---|---|---|---|---|---|---|"]
    for r in results.get("field", []):
        lines.append(f"| {r['threads']} | {r['t']} | **{r['now_ms']:.1f}** | {r['before_ms']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['max_err']:.1e} | {r['max_err_before']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == CHILD:
        torchcfm_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["moons", "8gaussians", "checkerboard"])
    parser.add_argument("--sections", default="default,ot_steps,ot_quality,field")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results_cost.md")
    parser.add_argument("--json", type=Path, default=HERE / "results_cost.json")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    start = time.perf_counter()
    results: dict[str, Any] = {"machine": machine_info("cpu"), "load_start": os.getloadavg()[0]}
    if args.json.exists():
        results.update({k: v for k, v in json.loads(args.json.read_text()).items() if k not in ("machine",)})
    results["load_start"] = os.getloadavg()[0]

    def save(key: str, value: Any) -> None:
        results[key] = value
        results["seconds"] = time.perf_counter() - start
        results["load_end"] = os.getloadavg()[0]
        args.json.write_text(json.dumps(results, indent=1, default=float))
        args.out.write_text(render(results))

    with tempfile.TemporaryDirectory() as tmp:
        if "field" in sections:
            print("marginal field", flush=True)
            save("field", section_field(max(args.rounds * 7, 15)))
        if "default" in sections:
            print("default recipe vs TorchCFM", flush=True)
            section_default(args.datasets, Path(tmp), lambda rows: save("default", rows))
        if "ot_steps" in sections:
            print("OT step cost", flush=True)
            save("ot_steps", section_ot_steps(args.rounds))
        if "ot_quality" in sections:
            print("OT quality", flush=True)
            save("ot_quality", section_ot_quality(["independent", "ot, blocks of 64 (default)",
                                                   "ot, whole batch of 512"]))
    print(render(results))
    print(f"median W2/floor of flowscope: {median([r['flowscope_w2_ratio'] for r in results.get('default', [])])}")


if __name__ == "__main__":
    main()
