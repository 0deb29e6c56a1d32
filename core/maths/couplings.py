"""Couplings pi(x0, x1): how a minibatch of source points is paired with a minibatch of data.

Each coupling returns a permutation `perm` of the source batch so that (x0[perm], x1) are the pairs:
a permutation never duplicates nor drops a point, so the marginals of the batch are kept exactly.

An OT coupling can be solved on blocks of the batch (`block` rows each, `blockwise_ot_permutation`):
several small exact problems instead of one of the whole batch. The batch's rows are in random order, so
the blocks are random sub-batches; at batch 512, blocks of 64 keep ~95% of the exact coupling's reduction
of the transport cost at a small fraction of its solve time (bench/results_cost.md).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["COUPLINGS", "REFLOW", "STORED_COUPLINGS", "CouplingName", "blockwise_ot_permutation",
           "exact_ot_permutation", "pair",
           "sinkhorn_permutation", "squared_distances", "transport_cost"]

CouplingName = Literal["independent", "ot", "sinkhorn"]
COUPLINGS: tuple[str, ...] = ("independent", "ot", "sinkhorn")
#: The fixed coupling of a reflowed model: (x0, teacher(x0)) pairs (`flowscope.reflow`), not a minibatch pairing.
REFLOW = "reflow"
#: Every coupling a stored model may have been trained with.
STORED_COUPLINGS: tuple[str, ...] = (*COUPLINGS, REFLOW)
_NO_WEIGHTS = np.empty(0)  # POT's spelling of uniform marginals


def squared_distances(x0: Tensor, x1: Tensor) -> np.ndarray:
    """Cost matrix C_ij = ||x0_i - x1_j||^2 as float64 numpy (the OT solvers run on the CPU)."""
    a = x0.detach().to("cpu", torch.float64)
    b = x1.detach().to("cpu", torch.float64)
    return torch.cdist(a, b).square_().numpy()


def exact_ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """Exact minibatch OT for equal batch sizes: the pairing minimising sum ||x0_perm[j] - x1_j||^2.

    With uniform weights on n + n points the optimal plan is a permutation matrix / n (Birkhoff), and
    POT's network simplex returns such a vertex; it is several times faster than a linear-assignment
    solver on 2-D squared-Euclidean costs (many near ties). The permutation is one argmax per column.
    """
    import ot  # POT (with scipy's optimisers) loads on first use: `import flowscope` stays quick

    plan = ot.emd(_NO_WEIGHTS, _NO_WEIGHTS, squared_distances(x0, x1), numItermax=10_000_000)
    return torch.from_numpy(plan.argmax(axis=0)).to(x0.device)


def blockwise_ot_permutation(x0: Tensor, x1: Tensor, block: int) -> Tensor:
    """Exact OT within consecutive blocks of `block` rows (the last block takes the remainder): a permutation
    that maps each block of x0 onto the same block of x1, optimal within the block.

    All blocks' cost matrices come from one batched cdist; each block is one linear assignment (scipy's
    LAPJV-style solver, faster than the network simplex below ~150 points). block >= len(x0) is the exact
    coupling of the whole batch.
    """
    from scipy.optimize import linear_sum_assignment

    if block < 1:
        raise ValueError(f"OT block must be >= 1, got {block}")
    n = x0.shape[0]
    if block >= n:
        return exact_ot_permutation(x0, x1)
    full = (n // block) * block
    a = x0[:full].detach().to("cpu", torch.float64).reshape(-1, block, x0.shape[1])
    b = x1[:full].detach().to("cpu", torch.float64).reshape(-1, block, x1.shape[1])
    costs = torch.cdist(a, b).square_().numpy()
    perm = np.empty(n, dtype=np.int64)
    for k, cost in enumerate(costs):
        rows, cols = linear_sum_assignment(cost)
        perm[k * block + cols] = k * block + rows
    if full < n:
        rest = exact_ot_permutation(x0[full:], x1[full:]).cpu().numpy()
        perm[full:] = full + rest
    return torch.from_numpy(perm).to(x0.device)


def sinkhorn_permutation(x0: Tensor, x1: Tensor, reg: float = 0.05) -> Tensor:
    """Entropic OT (POT's Sinkhorn, reg relative to the mean cost), rounded to the nearest permutation."""
    import ot
    from scipy.optimize import linear_sum_assignment

    cost = squared_distances(x0, x1)
    cost = cost / max(float(cost.mean()), 1e-12)
    n = cost.shape[0]
    plan = ot.sinkhorn(np.full(n, 1.0 / n), np.full(n, 1.0 / n), cost, reg, numItermax=5000, warn=False)
    rows, cols = linear_sum_assignment(plan, maximize=True)
    perm = np.empty_like(rows)
    perm[cols] = rows
    return torch.from_numpy(perm).to(x0.device)


def pair(
    x0: Tensor, x1: Tensor, coupling: str = "independent", generator: torch.Generator | None = None,
    groups: Tensor | None = None, block: int = 0,
) -> tuple[Tensor, Tensor]:
    """Pair source points x0 [B, d] with data x1 [B, d] under `coupling`; returns (x0_paired, x1).

    "independent" keeps the given (already random) order, "ot" solves exact minibatch OT and
    "sinkhorn" entropic OT. Batches must have the same size for the OT couplings. `groups` [B] (e.g. the
    data's classes) restricts an OT coupling to pairs within each group: row j's group holds both x1[j]
    and the source rows it may be paired with, so a class's data are moved only by its own noise.
    `block` > 0 solves "ot" exactly within consecutive blocks of that many rows (of each group) instead of
    over the whole batch (`blockwise_ot_permutation`); 0 is the whole batch.
    """
    if coupling == "independent":
        return x0, x1
    if groups is not None:
        paired = x0.clone()
        for group in torch.unique(groups).tolist():
            rows = (groups == group).nonzero().squeeze(1)
            if len(rows) > 1:
                paired[rows] = pair(x0[rows], x1[rows], coupling, block=block)[0]
        return paired, x1
    if x0.shape != x1.shape:
        raise ValueError(f"{coupling} coupling needs equal batches, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if coupling == "ot":
        return x0[blockwise_ot_permutation(x0, x1, block) if block else exact_ot_permutation(x0, x1)], x1
    if coupling == "sinkhorn":
        return x0[sinkhorn_permutation(x0, x1)], x1
    raise ValueError(f"unknown coupling {coupling!r}; expected one of {COUPLINGS}")


def transport_cost(x0: Tensor, x1: Tensor) -> float:
    """Mean squared distance of paired points: the objective minimised by the OT coupling."""
    return float((x0 - x1).square().sum(dim=1).mean())
