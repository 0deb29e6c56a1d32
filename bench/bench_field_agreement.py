"""Issue 3's figure: does a model trained with the core's defaults learn the exact marginal field?

For zoo models (trained with `flowscope.train`'s defaults), at several t, draw probe points x ~ p_t (so the
data density is not negligible there), and compare the learned field v_theta(x, t) with the exact
marginal field u_t(x) of the model's own training set (regenerated from its dataset name and seed and
checked against the stored hash), both from `flowscope.fieldview.fields_at`. Reports the median relative
error |v - u| / |u| and the median cosine (the same in data and normalised coordinates: the normalisation
is isotropic).

    python bench/bench_field_agreement.py [--models moons-ot moons-vp ...] [--out bench/results_field_agreement.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowscope.data.datasets import dataset_hash, make_dataset
from flowscope.fields import fieldview
from flowscope.fields.exact import field_error
from flowscope.zoo import registry as zoo

TIMES = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99)


def agreement(name: str, n_probe: int = 2000) -> list[tuple[float, float, float]]:
    """(t, median relative error, median cosine) of one zoo model's field over its whole training set."""
    flow = zoo.load(name)
    data = make_dataset(flow.info["dataset"], flow.info["n_train"], seed=flow.info["train"]["seed"])
    assert dataset_hash(data) == flow.info["dataset_hash"], "training data could not be regenerated"
    support = fieldview.field_support(flow, data, max_points=len(data))  # a stored source: its coupled pairs
    generator = torch.Generator().manual_seed(0)
    rows = []
    for t in TIMES:
        index = torch.randint(len(support), (n_probe,), generator=generator)
        x0 = torch.randn(n_probe, flow.dim, generator=generator) if support.z0 is None else support.z0[index]
        probe = flow.normalizer.decode(flow.path.psi(x0, support.z1[index], torch.full((n_probe,), t)))
        view = fieldview.fields_at(flow, support, probe, t)
        error = field_error(view.learned, view.marginal)
        rows.append((t, float(error.rel_error.median()), float(error.cosine.median())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+",
                        default=["moons-ot", "8gaussians-ot", "checkerboard-ot", "rings-ot", "moons-vp"])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_field_agreement.md"))
    args = parser.parse_args()
    lines = ["# Learned field vs exact marginal field (zoo models, core defaults)", "",
             f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}. Probe points x ~ p_t of the training set; "
             "exact field over all 20,000 training points. Cells: median |v - u| / |u| (median cosine).", "",
             "| model | " + " | ".join(f"t = {t}" for t in TIMES) + " |",
             "|---|" + "---|" * len(TIMES)]
    for name in args.models:
        cells = [f"{rel:.3f} ({cos:.3f})" for _, rel, cos in agreement(name)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
