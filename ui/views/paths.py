"""Paths: samples moving from the prior to the data, the density of x_t over t, solver cost (NFE) and accuracy (W2)."""

from __future__ import annotations

import numpy as np
import streamlit as st

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
w2, floor = state.memo("w2", view, (solver.method, solver.steps, *guide.key),
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
cols[1].metric(f"W2 to {of} (1,000 samples)", f"{w2:.3f}")
cols[2].metric(f"W2 floor ({of} vs itself)" if known else "W2 floor (data vs data)",
               "n/a" if floor is None else f"{floor:.3f}")
cols[3].metric("W2 / floor", "n/a" if floor is None else f"{w2 / floor:.2f}",
               help="Near 1: as close to the data as a fresh draw of the data itself.")
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


@st.fragment
def density_over_t() -> None:
    """The t slider and the two density panels: only this part reruns when t moves."""
    st.subheader("Density of x_t over t")
    t = st.slider("t", 0.0, 1.0, 0.5, 0.025, key="paths_t",
                  help="Left: histogram of the model's particles at t; right: the exact p_t of the data.")
    if not axes.identity:
        st.caption(f"For this {view.flow.dim}-D model both panels are of the projected x_t: the right one is the "
                   "exact density of the projected data's p_t (all dimensions pushed through the projection, not "
                   "a slice), which is what the histogram of the projected particles estimates.")
    frame = int(np.argmin(np.abs(shown.times - view.flow.clamp_time(t))))
    t_frame = float(shown.times[frame])
    support = (widgets.class_support(view, guide.label) if known and guide.label is not None
               else widgets.field_support(view))
    xs, ys, density = compute.density_on_view(view.flow, support, axes.projection, bounds, t_frame)
    if known and guide.w:
        st.caption(f"With guidance (w = {guide.w:g}) the particles are not meant to follow p_t(x | y) exactly: "
                   "guidance sharpens the class, away from the other classes.")
    st.plotly_chart(plots.density_pair(shown.points[frame], density, xs, ys, bounds, t_frame, height=360,
                                       titles=axes.titles, projected=not axes.identity, equal=axes.square,
                                       class_name=guide.name if known else None, guidance=guide.w),
                    key="paths_density")


with right:
    density_over_t()
