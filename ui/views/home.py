"""Flow (the start page): a pretrained model's noise flowing into data, and the field that moves it.

Its first plot comes from the start-page cache (see startpage.py) when there is one, before torch is imported.
Both figures of the default model are built once per server (st.cache_resource), so that a new session's
first plot costs only their sending and drawing.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from flowscope_ui import layout, plots, startpage

layout.header("flowscope: flow matching, made visible",
              "Noise at t = 0 flowing into data at t = 1 along the velocity field that a flow matching model "
              "learned (Lipman et al., ICLR 2023); press ▶ Play, or drag the t slider.")
caption = st.empty()
left, right = st.columns([3, 2])
flow_slot = left.empty()
SETTINGS = "rk4-30|500|41"


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_flow(picture: str, stamp: int) -> tuple[str, go.Figure] | None:
    """(caption, figure) of a start-page picture file (its path and modification time), built once per server."""
    flow = startpage.read(Path(picture))
    if flow is None:
        return None
    return flow.caption, plots.flow_animation(flow.points, flow.times, flow.bounds, data=flow.data)


default = startpage.default_model()
cached = None
if default is not None and st.session_state.get(layout.MODEL_KEY) in (None, f"zoo:{default[0]}"):
    picture = startpage.picture_file(default[1], SETTINGS)
    if picture is not None:
        cached = cached_flow(str(picture), picture.stat().st_mtime_ns)
if cached is not None:
    caption.caption(cached[0])
    flow_slot.plotly_chart(cached[1], key="home_flow")

from flowscope import SolverConfig  # noqa: E402  (torch: only after the first plot)
from flowscope_ui import compute, state, widgets  # noqa: E402

widgets.sidebar()
view = widgets.current_model()
axes = widgets.projection_picker(view)
bounds = widgets.bounds(view, axes)
if cached is None or default is None or view.key != f"zoo:{default[0]}":
    caption.caption(widgets.caption_text(view))
    traj = widgets.projected_trajectories(view, axes, SolverConfig(method="rk4", steps=30), n=500)
    flow_slot.plotly_chart(plots.flow_animation(traj.points, traj.times, bounds,
                                                data=widgets.projected_data(view, axes, 1500), titles=axes.titles,
                                                equal=axes.square),
                           key="home_flow")
    if default is not None and view.key == f"zoo:{default[0]}":
        startpage.save(default[1], SETTINGS, startpage.CachedFlow(traj.points, traj.times, view.data[:1500], bounds,
                                                                  widgets.caption_text(view)))


def field_figure() -> go.Figure:
    """The learned field over the exact p_t at every t of the slider (for D > 2: on the slice through the data
    mean spanned by the view's axes)."""
    times = compute.time_grid(view.flow.path.t_max)
    fields = state.memo("home_fields_frames", view, (bounds, axes.key), lambda: compute.fields_over_t(
        view.flow, widgets.field_support(view), axes.projection, widgets.data_mean(view), bounds, times, 0,
        (0.0, 0.0)))
    where = "" if axes.identity else "<br>on the slice through the data mean"
    frames = [[plots.Panel(title=f"learned field v_theta(x, t = {f.t:.2f}){where} over the exact p_t",
                           heat=f.marginal_density, heat_name="p_t", arrows=compute.coarse(f.points, f.learned))]
              for f in fields]
    return plots.animated_panels(frames, times, fields[0].xs, fields[0].ys, bounds, compute.arrow_length(bounds),
                                 active=compute.nearest_frame(times, 0.8), height=400, titles=axes.titles,
                                 equal=axes.square)


@st.cache_resource(max_entries=4, show_spinner=False)
def shared_field_figure(cache_id: str, settings: tuple[object, ...]) -> go.Figure:
    """`field_figure` of a zoo model (its cache id and the view's settings), built once per server."""
    return field_figure()


with right:
    st.plotly_chart(shared_field_figure(view.cache_id, (bounds, axes.key)) if view.is_zoo else field_figure(),
                    key="home_field")
    widgets.view_width_caption(widgets.field_support(view))
    st.markdown("**Where next**")
    st.page_link("views/gallery.py", label="Gallery: every pretrained model", icon=":material/grid_view:")
    st.page_link("views/paths.py", label="Paths: samples over time, solver cost and accuracy",
                 icon=":material/timeline:")
    st.page_link("views/fields.py", label="Fields: conditional vs marginal vs learned", icon=":material/explore:")
    st.page_link("views/marginals.py", label="Marginals: every dimension, data vs model",
                 icon=":material/bar_chart:")
    st.page_link("views/train.py", label="Train: on your own data", icon=":material/model_training:")
    st.page_link("views/compare.py", label="Compare: two models on the same noise", icon=":material/compare:")
    st.page_link("views/learn.py", label="Learn: the paper's ideas in plain words", icon=":material/school:")
