"""Paths: samples moving from the prior to the data, the density of x_t over t, solver cost (NFE) and accuracy (W2)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from flowscope.evaluation.records import QualityReport
from flowscope_ui import compute, plots, state, widgets

widgets.header("Paths", "Particles moving from the source (t = 0) to the data (t = 1) along the learned field, "
               "the density of x_t against the exact p_t of the data, and what a solver costs (NFE) and how "
               "close its samples land (W2).")
view = widgets.current_model()
widgets.model_caption(view)
axes = widgets.projection_picker(view)
guide = widgets.guidance_picker(view)  # a conditional model: the class and guidance scale w of its particles
by_class = guide.label is not None
known = (by_class and guide.label is not None and view.data_labels is not None
         and len(widgets.class_data(view, guide.label)) >= 2)  # the class's own data points are known
solver = widgets.solver_picker("paths")
traj = widgets.trajectories(view, solver, n=2000, guide=guide)  # in all D dimensions: W2 is measured there
shown = widgets.projected_trajectories(view, axes, solver, n=2000, guide=guide)
reference = widgets.class_data(view, guide.label) if known and guide.label is not None else view.data
quality = state.memo("w2_quality", view, (solver.method, solver.steps, *guide.key),
                     lambda: compute.w2_with_floor(traj.points[-1], reference, 1000))
if by_class:
    st.caption(f"Particles of class **{guide.name}** at guidance w = {guide.w:g}, following the model's guided field "
               "v_w = v(x, t, y) + w (v(x, t, y) − v(x, t, none)) (w = 0: plain conditional sampling; the same w as "
               "Ho & Salimans' guidance weight and Meta's cfg_scale). "
               + (f"W2 is measured to the {len(reference):,} data points of class {guide.name}." if known else
                  "The model's data carry no class labels: W2 and the density are those of all its data."))
of = f"class {guide.name}'s data" if known else "the data"
cols = st.columns(4)
cols[0].metric("NFE (velocity evaluations)", traj.nfe)
cols[1].metric(f"W2 to {of} ({quality.n:,} particles)", f"{quality.w2:.3f}")
cols[2].metric(f"W2 floor ({quality.n:,} vs {quality.n:,} data points)",
               "n/a" if quality.w2_floor is None else f"{quality.w2_floor:.3f}", help=quality.floor_text() + ".")
cols[3].metric("W2 / floor", "n/a" if quality.w2_ratio is None else f"{quality.w2_ratio:.2f}",
               help="Near 1: as close to the data as a fresh draw of the data itself.")
report = widgets.recorded_report(view)
recorded = report.w2_ratio if isinstance(report, QualityReport) else None
st.caption(f"W2: exact optimal transport between {quality.n:,} particles of the solver above and {quality.n:,} of "
           f"the {quality.rows:,} data points; floor: {quality.floor_text()} (the same draw)."
           + (f" The header's W2/floor {recorded:.2f} is the zoo's record, measured once with dopri5 at tolerance "
              "1e-5, 2,000 samples against fresh data, averaged over 10 draws: a different solver, sample size and "
              "draws, so the two differ (one 1,000-point draw varies by 10-25%)." if recorded is not None else ""))
bounds = widgets.bounds(view, axes)
left, right = st.columns(2)
with left:
    st.subheader("Particles and trajectories" + (f" of class {guide.name}, w = {guide.w:g}" if by_class else ""))
    background = widgets.projected_data(view, axes, 1500)
    classes = None
    if known and view.data_labels is not None:  # the data coloured by class, the chosen one highlighted
        classes = plots.class_markers(background, view.data_labels[:1500], view.flow.labels, guide.label, size=4.0)
    st.plotly_chart(plots.flow_animation(shown.points[:, :500], shown.times, bounds, data=background, height=560,
                                         titles=axes.titles, equal=axes.square, classes=classes), key="paths_flow")


def density_frames() -> tuple[np.ndarray, list[list[plots.Panel]], plots.Bounds, np.ndarray, np.ndarray]:
    """(times, per time the histogram of the particles beside the exact density, ...): at every frame of the
    particles' trajectories, computed once per model, view, solver and class (cached)."""
    support = (widgets.class_support(view, guide.label) if known and guide.label is not None
               else widgets.field_support(view))
    grids = state.memo("paths_density_frames", view, (axes.key, bounds, *guide.key, known),
                       lambda: [compute.density_on_view(view.flow, support, axes.projection, bounds, float(t))
                                for t in shown.times])
    xs, ys = grids[0][0], grids[0][1]
    projected = not axes.identity
    kind = "projected " if projected else ""
    frames = []
    for k, t in enumerate(shown.times):
        of = f" of y = {guide.name}, w = {guide.w:g}" if known else ""
        exact = f"exact {kind}p_t(x | y = {guide.name})" if known else f"exact {kind}p_t of the data"
        frames.append([plots.Panel(f"model: histogram of {kind}x_t{of}<br>t = {t:.2f}",
                                   plots.histogram_density(shown.points[k], xs, ys), "density"),
                       plots.Panel(f"{exact}<br>t = {t:.2f}", grids[k][2], "p_t")])
    return shown.times, frames, bounds, xs, ys


def density_over_t() -> None:
    """The density panels at every frame, with plotly's own t slider (no server round trip when t moves)."""
    st.subheader("Density of x_t over t")
    if not axes.identity:
        st.caption(f"For this {view.flow.dim}-D model both panels are of the projected x_t: the right one is the "
                   "exact density of the projected data's p_t (all dimensions pushed through the projection, not "
                   "a slice), which is what the histogram of the projected particles estimates.")
    if known and guide.w:
        st.caption(f"With guidance (w = {guide.w:g}) the particles are not meant to follow p_t(x | y) exactly: "
                   "guidance sharpens the class, away from the other classes.")
    times, frames, box, xs, ys = density_frames()
    figure = plots.animated_panels(frames, times, xs, ys, box, compute.arrow_length(box), titles=axes.titles,
                                   active=compute.nearest_frame(times, 0.5), equal=axes.square, height=330)
    st.plotly_chart(figure, key="paths_density")
    st.caption("Left: the histogram of the model's particles x_t; right: the exact p_t of the data. Drag the t "
               f"slider under them (or ▶ Play): its {len(times)} times move in your browser, without the server.")
    widgets.view_width_caption(widgets.field_support(view))


with right:
    density_over_t()
