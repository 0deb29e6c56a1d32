"""Per-column normalisation: exact round trips, velocities and densities mapped back exactly, constant
columns kept as constants of the model, and checkpoints that carry all of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowscope import MLPConfig, Normalizer, SolverConfig, TrainConfig, train
from flowscope.fields import fieldview
from flowscope.fields.exact import marginal_field
from flowscope.io.checkpoint import CheckpointError, from_bytes, to_bytes

RNG = np.random.default_rng(0)


def _table(n: int = 500) -> torch.Tensor:
    """Columns of very different scales (like wine's proline beside its hue) and one constant column."""
    x = RNG.normal(size=(n, 4)) * np.array([1000.0, 0.1, 3.0, 1.0]) + np.array([5.0, -2.0, 0.0, 7.0])
    x[:, 3] = 7.0
    return torch.from_numpy(x)


def test_each_column_is_standardised_and_constants_are_dropped() -> None:
    x = _table()
    norm = Normalizer.fit(x)
    assert norm.constant == (3,) and norm.data_dim == 4 and norm.dim == 3
    z = norm.encode(x)
    assert z.shape == (500, 3)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(norm.decode(z), x)
    u = torch.randn(5, 3, dtype=torch.float64)
    v = norm.decode_velocity(u)
    torch.testing.assert_close(v[:, :3], u * torch.tensor(norm.scale[:3], dtype=torch.float64))
    assert bool((v[:, 3] == 0).all())
    assert norm.log_det == pytest.approx(sum(math.log(s) for s in norm.scale[:3]))
    glob = Normalizer.fit(x, per_column=False)
    assert len(set(glob.scale[:3])) == 1 and glob.constant == (3,)
    kept = Normalizer.fit(x, keep_constant=True)
    assert kept.constant == () and kept.dim == 4


def test_trajectories_decode_with_their_leading_axes() -> None:
    norm = Normalizer.fit(_table())
    z = torch.randn(6, 10, 3, dtype=torch.float64)
    x = norm.decode(z)
    assert x.shape == (6, 10, 4) and bool((x[..., 3] == 7.0).all())
    torch.testing.assert_close(norm.encode(x), z)


def test_a_model_of_a_table_restores_its_constant_column_and_scales() -> None:
    x = _table(2000).float()
    flow = train(x, model=MLPConfig(dim=4, width=32, depth=2),
                 config=TrainConfig(steps=300, batch_size=256, device="cpu")).model
    assert flow.dim == 4 and flow.latent_dim == 3
    samples = flow.sample(1000, solver=SolverConfig("rk4", steps=10), generator=torch.Generator().manual_seed(0))
    assert bool((samples.samples[:, 3] == 7.0).all())
    ratio = samples.samples[:, :3].std(0) / x[:, :3].std(0)
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio  # every column at its own scale
    back = from_bytes(to_bytes(flow), "table.safetensors")
    assert back.normalizer == flow.normalizer
    torch.testing.assert_close(back.velocity(x[:5], torch.full((5,), 0.3)), flow.velocity(x[:5], torch.full((5,), 0.3)))


def test_exact_fields_map_back_with_the_diagonal_scale() -> None:
    """u_x = s * u_z per column and log p_x = log p_z - sum log s, against the normalised computation."""
    x = _table(300).float()
    flow = train(x, model=MLPConfig(dim=4, width=8, depth=1), config=TrainConfig(steps=2, device="cpu")).model
    support = fieldview.field_support(flow, x)
    points = x[:20] + 0.1
    view = fieldview.fields_at(flow, support, points, 0.6)
    exact = marginal_field(flow.path, flow.normalizer.encode(x), flow.normalizer.encode(points), 0.6)
    torch.testing.assert_close(view.marginal, flow.normalizer.decode_velocity(exact.velocity))
    torch.testing.assert_close(view.marginal_log_density, exact.log_density - flow.normalizer.log_det)
    learned_z = flow.normalizer.encode_velocity(view.learned)
    torch.testing.assert_close(flow.normalizer.decode_velocity(learned_z), view.learned)
    torch.testing.assert_close(view.error_normalised, (learned_z - exact.velocity).norm(dim=1))


def test_a_data_sample_travels_with_the_checkpoint() -> None:
    x = _table(100).float()
    flow = train(x, model=MLPConfig(dim=4, width=8, depth=1), config=TrainConfig(steps=2, device="cpu")).model
    flow.data = x[:50]
    torch.testing.assert_close(from_bytes(to_bytes(flow), "m.safetensors").data, x[:50])


@pytest.mark.parametrize("field,value,message", [
    ("scale", [1.0, 2.0], "lists of 4 numbers"),
    ("constant", [5], "increasing indices below 4"),
    ("constant", [], "4 columns and 0 constant ones, but the model is 3-dimensional"),
    ("constant", ["a"], "list of column indices"),
])
def test_bad_normalisation_is_named(field: str, value: object, message: str) -> None:
    import json
    import struct

    flow = train(_table(100).float(), model=MLPConfig(dim=4, width=8, depth=1),
                 config=TrainConfig(steps=2, device="cpu")).model
    raw = to_bytes(flow)
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    config = json.loads(header["__metadata__"]["config"])
    config["normalization"][field] = value
    header["__metadata__"]["config"] = json.dumps(config)
    encoded = json.dumps(header).encode()
    with pytest.raises(CheckpointError, match=message):
        from_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size :], "bad.safetensors")
