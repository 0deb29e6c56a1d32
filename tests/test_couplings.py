"""Couplings: permutations (no duplicated or dropped points); exact OT is optimal; devices kept."""

from __future__ import annotations

import itertools

import pytest
import torch

from flowscope.maths.couplings import (
    blockwise_ot_permutation,
    exact_ot_permutation,
    pair,
    sinkhorn_permutation,
    transport_cost,
)


def _batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen) + 3.0


def test_exact_ot_is_optimal_by_enumeration() -> None:
    x0, x1 = _batch(6, 0)
    perm = exact_ot_permutation(x0, x1)
    best = min(transport_cost(x0[list(p)], x1) for p in itertools.permutations(range(6)))
    assert transport_cost(x0[perm], x1) == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("coupling", ["independent", "ot", "sinkhorn"])
def test_pairing_is_a_permutation(coupling: str) -> None:
    x0, x1 = _batch(128, 1)
    p0, p1 = pair(x0, x1, coupling)
    assert p1 is x1
    rows = {tuple(r.tolist()) for r in p0}
    assert len(rows) == 128 and rows == {tuple(r.tolist()) for r in x0}


def test_ot_and_sinkhorn_lower_transport_cost() -> None:
    x0, x1 = _batch(256, 2)
    x1 = x1 - 3.0  # same distribution: random pairs cost about 2 d, optimal ones far less
    independent = transport_cost(x0, x1)
    exact = transport_cost(x0[exact_ot_permutation(x0, x1)], x1)
    entropic = transport_cost(x0[sinkhorn_permutation(x0, x1)], x1)
    assert exact < 0.3 * independent
    assert exact <= entropic <= 1.05 * exact


def test_unknown_coupling_and_shape_mismatch() -> None:
    x0, x1 = _batch(8, 3)
    with pytest.raises(ValueError, match="unknown coupling 'magic'"):
        pair(x0, x1, "magic")
    with pytest.raises(ValueError, match="equal batches"):
        pair(x0[:4], x1, "ot")


@pytest.mark.parametrize("block", [64, 100, 512])
def test_blockwise_ot_is_a_permutation_optimal_within_each_block(block: int) -> None:
    x0, x1 = _batch(512, 3)
    x1 = x1 - 3.0
    perm = blockwise_ot_permutation(x0, x1, block)
    assert sorted(perm.tolist()) == list(range(512))
    for start in range(0, 512, block):  # each block of x1 is paired with the same block of x0, optimally
        rows = slice(start, start + block)
        assert set(perm[rows].tolist()) == set(range(start, min(start + block, 512)))
        best = exact_ot_permutation(x0[rows], x1[rows])
        assert transport_cost(x0[perm[rows]], x1[rows]) == pytest.approx(transport_cost(x0[rows][best], x1[rows]),
                                                                          rel=1e-6)


def test_blockwise_ot_cost_lies_between_independent_and_exact() -> None:
    x0, x1 = _batch(512, 4)
    x1 = x1 - 3.0
    independent = transport_cost(x0, x1)
    exact = transport_cost(x0[exact_ot_permutation(x0, x1)], x1)
    by_block = {b: transport_cost(*pair(x0, x1, "ot", block=b)) for b in (32, 64, 128, 512)}
    assert by_block[512] == pytest.approx(exact, rel=1e-9)
    assert exact < by_block[128] < by_block[64] < by_block[32] < 0.5 * independent
    with pytest.raises(ValueError, match="block must be >= 1"):
        blockwise_ot_permutation(x0, x1, 0)
