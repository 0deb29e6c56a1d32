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
solver = widgets.solver_picker("paths")
traj = widgets.trajectories(view, solver, n=2000)
w2, floor = state.memo("w2", view, (solver.method, solver.steps),
                       lambda: compute.w2_with_floor(traj.points[-1], view.data, 1000))
cols = st.columns(4)
cols[0].metric("NFE (velocity evaluations)", traj.nfe)
cols[1].metric("W2 to the data (1,000 samples)", f"{w2:.3f}")
cols[2].metric("W2 floor (data vs data)", "n/a" if floor is None else f"{floor:.3f}")
cols[3].metric("W2 / floor", "n/a" if floor is None else f"{w2 / floor:.2f}",
               help="Near 1: as close to the data as a fresh draw of the data itself.")
bounds = compute.view_bounds(view.flow, view.data)
left, right = st.columns(2)
with left:
    st.subheader("Particles and trajectories")
    st.plotly_chart(plots.flow_animation(traj.points[:, :500], traj.times, bounds, data=view.data[:1500], height=560),
                    key="paths_flow")


@st.fragment
def density_over_t() -> None:
    """The t slider and the two density panels: only this part reruns when t moves."""
    st.subheader("Density of x_t over t")
    t = st.slider("t", 0.0, 1.0, 0.5, 0.025, key="paths_t",
                  help="Left: histogram of the model's particles at t; right: the exact p_t of the data.")
    frame = int(np.argmin(np.abs(traj.times - view.flow.clamp_time(t))))
    t_frame = float(traj.times[frame])
    xs, ys, density = compute.density_at(view.flow, widgets.field_support(view), bounds, t_frame)
    st.plotly_chart(plots.density_pair(traj.points[frame], density, xs, ys, bounds, t_frame, height=360),
                    key="paths_density")


with right:
    density_over_t()
