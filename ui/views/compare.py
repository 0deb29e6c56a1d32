"""Compare: two models (or two paths on the same data) side by side, started from the same noise."""

from __future__ import annotations

import streamlit as st

from flowscope import SolverConfig
from flowscope_ui import compute, plots, reflow_panel, state, widgets

widgets.header("Compare", "Two models (for example two paths on the same data) started from the same noise, side by "
               "side: their trajectories, how straight they are, and how close their samples get to the data (W2) "
               "as the solver takes more steps (NFE).")
options = state.model_options()
if not options:
    st.info(widgets.NO_MODEL)
    st.stop()
keys = list(options)
first = st.session_state.get(state.MODEL_KEY) or keys[0]
first = first if first in options else keys[0]
datasets = state.model_datasets()
same_data = [k for k in keys if k != first and datasets.get(k) == datasets.get(first)]
second = (same_data or [k for k in keys if k != first] or [first])[0]
left, right = st.columns(2)
a = left.selectbox("Model A", keys, index=keys.index(first), format_func=options.__getitem__, key="compare_a")
b = right.selectbox("Model B", keys, index=keys.index(second), format_func=options.__getitem__, key="compare_b")
views = [widgets.open_model(a), widgets.open_model(b)]
# each D > 2 model is drawn through its own projection (one picker when A and B are the same model)
picked = {v.key: widgets.projection_picker(v, label=name) for name, v in zip("AB", views, strict=True)
          if v.key != a or name == "A"}
axes = [picked[v.key] for v in views]
solver = widgets.solver_picker("compare", default_method="euler", default_steps=8)

runs = [widgets.trajectories(v, solver, n=500, frames=21) for v in views]
shown = [widgets.projected_trajectories(v, ax, solver, n=500, frames=21) for v, ax in zip(views, axes, strict=True)]
boxes = [widgets.bounds(v, ax) for v, ax in zip(views, axes, strict=True)]
bounds = plots.union_bounds(*boxes)
titles = [f"A: {views[0].label}", f"B: {views[1].label}"]
st.plotly_chart(plots.trajectories_side_by_side([r.points[:, :150] for r in shown], titles, bounds,
                                                data=[widgets.projected_data(v, ax, 1000)
                                                      for v, ax in zip(views, axes, strict=True)],
                                                axis_titles=[ax.titles for ax in axes],
                                                equal=all(ax.square for ax in axes)), key="compare_traj")

rows, floors = [], []
for name, view, run in zip("AB", views, runs, strict=True):
    straight, energy = state.memo("straightness", view, (), lambda v=view: compute.straightness_of(v.flow))
    reference = state.memo("dopri5_nfe", view, (), lambda v=view: compute.nfe_or_none(v.flow, SolverConfig("dopri5")))
    quality = state.memo("w2_quality", view, (solver.method, solver.steps, "compare"),
                         lambda v=view, r=run: compute.w2_with_floor(r.points[-1], v.data, 500))
    w2, floor = quality.w2, quality.w2_floor
    floors.append((name, quality))
    rows.append({"model": f"{name}: {view.label}", "path": view.flow.path.name, "coupling": view.flow.coupling,
                 "straightness": round(straight, 4), "path energy": round(energy, 3),
                 f"NFE {solver.method}": run.nfe, "W2": round(w2, 4),
                 "W2 floor": None if floor is None else round(floor, 4),
                 "W2 / floor": None if quality.w2_ratio is None else round(quality.w2_ratio, 2),
                 "NFE dopri5": reference})
st.dataframe(rows, hide_index=True)
st.caption("W2: distance of " + " and ".join(f"{q.n:,} samples of {name} (at the solver settings above) to "
                                             f"{q.n:,} of its {q.rows:,} data points" for name, q in floors)
           + "; its floor is the W2 between two disjoint draws of as many points of the same data. NFE dopri5: "
           "evaluations at tolerance 1e-5. Straightness S = ∫ E‖(x1 − x0) − v(x_t, t)‖² dt along the model's own "
           "trajectories (0 = straight lines at constant "
           "speed): straighter flows need fewer solver steps.")

st.subheader("Sample quality against solver steps")
method = st.segmented_control("Fixed-step solver", ["euler", "midpoint", "rk4"], default="euler", key="compare_sweep")
steps = (1, 2, 4, 8, 16, 32)
series = []
for name, view in zip("AB", views, strict=True):
    result = state.memo("sweep", view, (method, steps), lambda v=view: compute.sweep(v.flow, v.data, method or "euler",
                                                                                       steps))
    series.append((f"{name}: {view.label}", result.nfe, result.w2))
same = views[0].dataset == views[1].dataset
sweep_floors = [(f"{name}: W2 floor", q.w2_floor) for name, q in floors[:1 if same else 2] if q.w2_floor is not None]
st.plotly_chart(plots.sweep_figure(series, floors=sweep_floors), key="compare_sweep_plot")

reflow_panel.compare_section(views)
