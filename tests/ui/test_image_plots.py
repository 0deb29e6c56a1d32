"""The image figures of plots.py: mosaics of rows of images, their titles and notes, the t slider's frames, the
distance histograms; and the Images page's computations (image_compute) on a tiny model, without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowscope import FlowModel, TrainConfig, train
from flowscope.evaluation.records import ImageReport
from flowscope.fields.fieldview import field_support
from flowscope.maths.imagespec import ImageSpec
from flowscope.nets.unet import UNetConfig
from flowscope_ui import image_compute, plots, widgets


def test_grey_mosaic_places_each_image_with_transparent_gaps_and_clips() -> None:
    images = np.arange(2 * 1 * 2 * 3, dtype=float).reshape(2, 1, 2, 3)  # two 2 x 3 images, values 0..11
    mosaic = plots.image_mosaic([plots.ImageRow("r", images)], low=0.0, high=10.0)
    assert mosaic.shape == (2, 3 + 1 + 3)
    assert np.array_equal(mosaic[:, :3], images[0, 0]) and np.isnan(mosaic[:, 3]).all()
    assert np.array_equal(mosaic[:, 4:], np.minimum(images[1, 0], 10.0))  # clipped to the pixel range


def test_colour_mosaic_is_rgb_bytes_on_white() -> None:
    images = np.zeros((1, 3, 2, 2))
    images[0, 0] = 1.0  # pure red
    mosaic = plots.image_mosaic([plots.ImageRow("", images), plots.ImageRow("", images)], low=0.0, high=1.0)
    assert mosaic.dtype == np.uint8 and mosaic.shape == (2 + 1 + 2, 2, 3)
    assert (mosaic[0, 0] == [255, 0, 0]).all() and (mosaic[2] == 255).all()  # the gap between the rows is white


def test_image_rows_titles_rows_and_columns_and_notes_each_image() -> None:
    rows = [plots.ImageRow("sample", np.ones((3, 1, 8, 8)), ["d = 1", "d = 2", "d = 3"]),
            plots.ImageRow("nearest", np.zeros((3, 1, 8, 8)), ["#4", "#5", "#6"])]
    fig = plots.image_rows(rows, 0.0, 16.0, column_titles=["a", "b", "c"])
    heat, text = fig.data
    assert heat.type == "heatmap" and heat.zmin == 0.0 and heat.zmax == 16.0
    assert list(fig.layout.yaxis.ticktext) == ["sample", "nearest"] and list(fig.layout.xaxis.ticktext) == ["a", "b",
                                                                                                           "c"]
    assert list(text.text) == ["d = 1", "d = 2", "d = 3", "#4", "#5", "#6"]
    assert fig.layout.yaxis.scaleanchor == "x"  # square pixels
    assert all(y > 7 for y in text.y[:3])  # each note sits under its image
    with pytest.raises(ValueError, match="one shape"):
        plots.image_rows([plots.ImageRow("", np.ones((1, 1, 8, 8))), plots.ImageRow("", np.ones((1, 1, 6, 6)))], 0, 1)


def test_image_grid_wraps_rows_and_animated_rows_move_t_in_frames() -> None:
    grid = plots.image_grid(np.ones((10, 1, 4, 4)), 0.0, 1.0, columns=4)
    assert np.asarray(grid.data[0].z, dtype=float).shape == (3 * 4 + 2, 4 * 4 + 3)
    times = np.array([0.0, 0.5, 1.0])
    frames = [[plots.ImageRow(f"x_t at {t}", np.full((2, 1, 4, 4), t)),
               plots.ImageRow("x1", np.full((2, 1, 4, 4), 1 - t))] for t in times]
    fig = plots.animated_image_rows(frames, times, 0.0, 1.0, active=1)
    assert [f.name for f in fig.frames] == ["0.00000", "0.50000", "1.00000"]
    assert np.nanmax(np.asarray(fig.frames[2].data[0].z, dtype=float)) == 1.0
    assert [list(f.layout.yaxis.ticktext) for f in fig.frames] == [[f"x_t at {t}", "x1"] for t in times]  # says t
    assert fig.layout.sliders[0].active == 1 and len(fig.layout.sliders[0].steps) == 3
    assert np.nanmax(np.asarray(fig.data[0].z, dtype=float)) == 0.5  # it opens on the active frame
    with pytest.raises(ValueError, match="same rows"):
        plots.animated_image_rows([frames[0], frames[1][:1]], times[:2], 0.0, 1.0)


def test_distance_histograms_share_bins_and_mark_medians() -> None:
    fig = plots.distance_histograms([("a", np.array([0.0, 0.1]), "red"), ("b", np.array([5.0, 6.0, 7.0]), "blue")])
    assert [t.name for t in fig.data] == ["a", "b"] and len(fig.data[0].x) == len(fig.data[1].x)
    assert [shape.x0 for shape in fig.layout.shapes] == [0.05, 6.0]


@pytest.fixture(scope="module")
def tiny_image_flow() -> tuple[FlowModel, np.ndarray]:
    """A tiny U-Net flow trained 20 steps on 40 random 1 x 4 x 4 images of 0..15, with those images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 16, (40, 1, 4, 4)).astype(np.float32)
    spec = ImageSpec(1, 4, 4, 0.0, 15.0, 16)
    result = train(torch.from_numpy(images), model=UNetConfig(1, 4, 4, base=8, attention=False),
                   config=TrainConfig(steps=20, batch_size=16, device="cpu"), image=spec)
    return result.model, images


def test_run_images_integrates_once_for_strips_and_frames(tiny_image_flow: tuple[FlowModel, np.ndarray]) -> None:
    flow, _ = tiny_image_flow
    run = image_compute.run_images(flow, 10, shown=3)
    assert run.samples.shape == (10, 1, 4, 4) and run.samples.min() >= 0.0 and run.samples.max() <= 15.0
    assert run.strips.shape == (3, image_compute.STRIP_TIMES, 1, 4, 4) and run.x0.shape == (10, 16)
    assert run.frames_xt.shape == run.frames_x1.shape == (len(run.frame_times), 3, 1, 4, 4)
    assert np.allclose(run.strips[:, -1], run.samples[:3], atol=1e-5)  # the last strip is the sample
    assert run.nfe == 2 * image_compute.VIEW_SOLVER.steps


def test_exact_field_copies_training_images_and_yardsticks(tiny_image_flow: tuple[FlowModel, np.ndarray]) -> None:
    flow, images = tiny_image_flow
    support = field_support(flow, images.reshape(40, -1))
    run = image_compute.run_images(flow, 4, shown=1)
    exact = image_compute.exact_images(flow, support, run.x0)
    gaps = np.abs(exact[:, None] - images[None]).reshape(4, 40, -1).max(axis=2).min(axis=1)
    assert gaps.max() < 0.05 and exact.shape == run.samples.shape  # each exact sample is a training image
    held = image_compute.yardstick(images, images[:5] + 1.0)
    assert "5 held-out" in held.what and held.median == pytest.approx(4.0)  # 16 pixels, each 1 off
    alone = image_compute.yardstick(images, None)
    assert "leave" not in alone.what and "nearest other training image" in alone.what and len(alone.distances) == 40


def test_image_report_rows_put_each_figure_beside_its_yardstick() -> None:
    report = ImageReport.from_dict({
        "fd_floor": 8.0, "nn_held_out_median": 16.0, "classifier_accuracy_held_out": 0.98, "fd_w0": 12.0,
        "fd_ratio_w0": 1.5, "nn_median_w0": 17.0, "nn_ratio_w0": 1.06, "accuracy_w0": 0.9,
        "min_class_accuracy_w0": 0.7, "fd_w1": 16.0, "fd_ratio_w1": 2.0, "nn_median_w1": 18.0, "nn_ratio_w1": 1.125,
        "accuracy_w1": 0.97, "min_class_accuracy_w1": 0.9})
    rows = {r.label: r for r in report.rows()}
    assert rows["FD / floor, w = 1"].value == "2.00" and "floor 8.000" in rows["FD / floor, w = 1"].note
    assert "worst class 0.90" in rows["class accuracy, w = 1"].note and "0.98" in rows["class accuracy, w = 0"].note
    assert "16.00" in rows["NN / held-out, w = 0"].note
    table = widgets.report_table(report.rows())  # what the Images page shows: the same rows
    assert [t["figure"] for t in table] == [r.label for r in report.rows()]
    unjudged = ImageReport.from_dict({"nn_median": 3.0, "nn_held_out_median": 2.0, "nn_ratio": 1.5})
    assert [r.label for r in unjudged.rows()] == ["NN / held-out"]  # no classifier judged them: no FD, no accuracy
    assert unjudged.headline() == "NN/held-out 1.50"
