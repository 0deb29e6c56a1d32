"""Views of d > 2 models: projections, planes through a point, exact fields on a slice and the exact
density of projected particles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowscope import FlowModel, MLPConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset
from flowscope.fields import fieldview
from flowscope.fields.exact import marginal_field
from flowscope.fields.projection import coordinate_projection, pca_projection
from flowscope.maths.grid import grid_2d


@pytest.fixture(scope="module")
def flow5() -> FlowModel:
    """A small model of 5-D data whose columns have different scales."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 5)) @ rng.normal(size=(5, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 3.0])
    return train(torch.from_numpy(x).float(), model=MLPConfig(dim=5, width=16, depth=1),
                 config=TrainConfig(steps=30, device="cpu")).model


def test_coordinates_of_a_2d_model_are_todays_view() -> None:
    view = coordinate_projection(2, 0, 1, ("a", "b"))
    x = torch.randn(7, 2, dtype=torch.float64)
    torch.testing.assert_close(view.project(x), x)
    torch.testing.assert_close(view.plane(torch.zeros(2, dtype=torch.float64), x), x)
    assert view.labels == ("a", "b")
    with pytest.raises(ValueError, match="two different columns"):
        coordinate_projection(3, 1, 1)


def test_planes_are_consistent_with_their_projection(flow5: FlowModel) -> None:
    x = make_dataset("mixture8", 500, 0)[:, :5]
    for view in (coordinate_projection(5, 3, 1), pca_projection(torch.from_numpy(x), flow5.normalizer)):
        weights = torch.tensor(view.weights, dtype=torch.float64)
        axes = torch.tensor(view.axes, dtype=torch.float64)
        torch.testing.assert_close(axes @ axes.T, torch.eye(2, dtype=torch.float64))
        through = torch.from_numpy(x[3]).double()
        uv = torch.randn(9, 2, dtype=torch.float64)
        points = view.plane(through, uv)
        torch.testing.assert_close(view.project(points), uv)
        torch.testing.assert_close(view.plane(through, view.project(through)[None])[0], through)
        moved = (points - through) * weights  # in the view's metric the offsets lie in the axes' span
        torch.testing.assert_close(moved, (moved @ axes.T) @ axes)


def test_slice_fields_are_the_d_dimensional_exact_fields_on_the_plane(flow5: FlowModel) -> None:
    rng = np.random.default_rng(2)
    data = torch.from_numpy(rng.normal(size=(400, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 3.0])).float()
    support = fieldview.field_support(flow5, data)
    view = pca_projection(data, flow5.normalizer)
    grid = grid_2d((-2.0, 2.0), (-2.0, 2.0), 9, dtype=torch.float64)
    points = view.plane(data.double().mean(0), grid.points).float()
    fields = fieldview.fields_at(flow5, support, points, 0.55, x1_index=2)
    norm = flow5.normalizer
    exact = marginal_field(flow5.path, norm.encode(data), norm.encode(points), 0.55)
    torch.testing.assert_close(fields.marginal, norm.decode_velocity(exact.velocity))
    torch.testing.assert_close(fields.marginal_log_density, exact.log_density - norm.log_det)
    assert fields.error.shape == (81,)  # measured in all 5 dimensions
    torch.testing.assert_close(fields.error, (fields.learned - fields.marginal).norm(dim=1))
    arrows = view.project_velocity(fields.marginal.double())
    assert arrows.shape == (81, 2)


def test_projected_density_of_a_2d_model_is_the_marginal_density() -> None:
    data = torch.from_numpy(make_dataset("moons", 500, seed=0))
    flow = train(data, model=MLPConfig(dim=2, width=8, depth=1), config=TrainConfig(steps=2, device="cpu")).model
    support = fieldview.field_support(flow, data)
    grid = grid_2d((-3.0, 3.0), (-3.0, 3.0), 15)
    projected = fieldview.projected_log_density(flow, support, coordinate_projection(2, 0, 1), grid.points, 0.6)
    torch.testing.assert_close(projected, fieldview.marginal_log_density(flow, support, grid.points, 0.6),
                               atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("kind", ["coordinates", "pca"])
def test_projected_density_is_the_mixture_of_projected_gaussians(flow5: FlowModel, kind: str) -> None:
    """Each component N(alpha z1_i, v I) of p_t maps to N(b + M alpha z1_i, v M M^T): checked component by
    component with torch's MultivariateNormal, and the density integrates to 1."""
    rng = np.random.default_rng(3)
    data = torch.from_numpy(rng.normal(size=(60, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 3.0])).float()
    support = fieldview.field_support(flow5, data)
    view = coordinate_projection(5, 1, 4) if kind == "coordinates" else pca_projection(data, flow5.normalizer)
    t = 0.7
    tt = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = float(flow5.path.alpha(tt)), float(flow5.path.sigma(tt))
    norm = flow5.normalizer
    centres = view.project(norm.decode(alpha * norm.encode(data.double())))
    linear = view.project_velocity(norm.decode_velocity(torch.eye(norm.dim, dtype=torch.float64))).T
    covariance = sigma**2 * linear @ linear.T
    uv = centres[:10] + torch.randn(10, 2, dtype=torch.float64) * 0.3
    components = torch.distributions.MultivariateNormal(centres, covariance_matrix=covariance.expand(60, 2, 2))
    direct = torch.logsumexp(components.log_prob(uv[:, None, :]), dim=1) - math.log(60)
    got = fieldview.projected_log_density(flow5, support, view, uv.float(), t)
    torch.testing.assert_close(got.double(), direct, atol=1e-4, rtol=1e-4)
    spread = 6 * covariance.diagonal().sqrt()
    lo, hi = centres.min(0).values - spread, centres.max(0).values + spread
    grid = grid_2d((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])), 200)
    cell = float((hi[0] - lo[0]) * (hi[1] - lo[1])) / 199**2
    total = float(fieldview.projected_log_density(flow5, support, view, grid.points, t).exp().sum()) * cell
    assert total == pytest.approx(1.0, abs=0.02)
