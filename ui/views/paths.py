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
solver = widgets.solver_picker("paths")
traj = widgets.trajectories(view, solver, n=2000)  # in all D dimensions: W2 is measured there
shown = widgets.projected_trajectories(view, axes, solver, n=2000)
w2, floor = state.memo("w2", view, (solver.method, solver.steps),
                       lambda: compute.w2_with_floor(traj.points[-1], view.data, 1000))
cols = st.columns(4)
cols[0].metric("NFE (velocity evaluations)", traj.nfe)
cols[1].metric("W2 to the data (1,000 samples)", f"{w2:.3f}")
cols[2].metric("W2 floor (data vs data)", "n/a" if floor is None else f"{floor:.3f}")
cols[3].metric("W2 / floor", "n/a" if floor is None else f"{w2 / floor:.2f}",
               help="Near 1: as close to the data as a fresh draw of the data itself.")
bounds = widgets.bounds(view, axes)
left, right = st.columns(2)
with left:
    st.subheader("Particles and trajectories")
    st.plotly_chart(plots.flow_animation(shown.points[:, :500], shown.times, bounds,
                                         data=widgets.projected_data(view, axes, 1500), height=560,
                                         titles=axes.titles, equal=axes.square), key="paths_flow")


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
    xs, ys, density = compute.density_on_view(view.flow, widgets.field_support(view), axes.projection, bounds,
                                              t_frame)
    st.plotly_chart(plots.density_pair(shown.points[frame], density, xs, ys, bounds, t_frame, height=360,
                                       titles=axes.titles, projected=not axes.identity, equal=axes.square),
                    key="paths_density")


with right:
    density_over_t()
