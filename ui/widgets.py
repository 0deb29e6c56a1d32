"""Widgets and blocks shared by the pages: header, model picker, solver controls, cached trajectories."""

from __future__ import annotations

from typing import Any

import streamlit as st
import torch

from flowscope import SolverConfig, zoo
from flowscope.fieldview import FieldSupport
from flowscope.sampling import FIXED_STEP_METHODS, METHODS

from . import compute, state
from .layout import header as header  # re-exported: pages use widgets.header; the start page, layout.header
from .state import ModelView

_PICKER = "_model_picker"
NO_MODEL = (
    "No model to show yet. Build the pretrained models with `flowscope zoo build` "
    "(or `flowscope zoo build --only moons-ot` for one), or train one on the **Train** page."
)


def sidebar() -> None:
    """Every run, before a page draws: one torch thread, an interrupted training settled, the model menu.

    The views' tensors are small: one thread per session's work is fastest, and on a small machine it keeps
    sessions (and a training running in another session) from fighting over cores.
    """
    torch.set_num_threads(1)
    state.settle_training()  # a training that a click just interrupted keeps its model before anything is drawn
    model_picker()


def _on_pick() -> None:
    """Copy the picker's value to the canonical selection (a callback, so it runs before the script)."""
    state.select(st.session_state[_PICKER])


def model_picker() -> None:
    """Sidebar menu of every model (pretrained and this session's); drawn on every page by app.py."""
    options = state.model_options()
    _, zoo_message = state.zoo_entries()
    with st.sidebar:
        if not options:
            st.info(NO_MODEL)
            return
        current = st.session_state.get(state.MODEL_KEY)
        if current not in options:
            current = state.default_key(options)
            st.session_state[state.MODEL_KEY] = current
        st.session_state[_PICKER] = current
        st.selectbox("Model shown in the views", list(options), format_func=options.__getitem__, key=_PICKER,
                     on_change=_on_pick, help="Pretrained models, then the ones trained or uploaded in this "
                     "browser session (only you see those).")
        if zoo_message:
            st.caption(f"Pretrained models unavailable: {zoo_message}")


def current_model() -> ModelView:
    """The selected model, or a clear message and the end of the page when there is none or it is broken."""
    key = st.session_state.get(state.MODEL_KEY) or state.default_key(state.model_options())
    if key is None:
        st.info(NO_MODEL)
        st.stop()
    return open_model(key)


def open_model(key: str) -> ModelView:
    """The model of `key`, or an error on the page (missing/corrupt file, not 2-D) and the end of the page."""
    try:
        view = state.resolve(key)
    except (zoo.ZooError, KeyError) as err:
        st.error(f"Cannot show model {key.removeprefix('zoo:')!r}: {err}")
        st.stop()
    if view.flow.dim != 2 or view.data.shape[1:] != (2,) or len(view.data) < 4:
        st.error(f"Model {view.label!r} cannot be drawn: the views need a 2-D model with its 2-D data.")
        st.stop()
    return view


def model_caption(view: ModelView) -> None:
    """One line about the model under the page's header."""
    st.caption(caption_text(view))


def caption_text(view: ModelView) -> str:
    """One line about the model: data, path, coupling, source and its recorded quality."""
    flow = view.flow
    parts = [f"**{view.label}**", f"data: {view.dataset}", f"path: {flow.path!r}", f"coupling: {flow.coupling}",
             "source: " + ("N(0, I)" if flow.source is None else "samples")]
    metrics: dict[str, Any] = view.info.get("metrics") or {}
    if "w2_ratio" in metrics:
        parts.append(f"W2/floor {metrics['w2_ratio']:.2f}")
    if "note" in view.info:
        parts.append(str(view.info["note"]))
    return " · ".join(parts)


def solver_picker(key: str, default_method: str = "rk4", default_steps: int = 20) -> SolverConfig:
    """Solver and step count (steps apply to the fixed-step methods; dopri5 adapts at 1e-5 tolerances)."""
    left, right = st.columns(2)
    method = left.selectbox("ODE solver", METHODS, index=METHODS.index(default_method), key=f"{key}_method",
                            help="euler, midpoint and rk4 take a fixed number of steps (1, 2 and 4 velocity "
                                 "evaluations each); dopri5 chooses its steps for atol = rtol = 1e-5.")
    steps = right.slider("Solver steps", 1, 100, default_steps, key=f"{key}_steps",
                         disabled=method not in FIXED_STEP_METHODS, help="Fixed-step solvers only.")
    return SolverConfig(method=method, steps=steps)


def trajectories(view: ModelView, solver: SolverConfig, n: int, frames: int = 41) -> compute.Trajectories:
    """Cached particle trajectories of the model from seeded noise (see compute.trajectories)."""
    settings = (solver.method, solver.steps, n, frames)
    try:
        return state.memo("trajectories", view, settings,
                          lambda: compute.trajectories(view.flow, n, solver, n_frames=frames))
    except compute.SolverFailed as err:
        st.error(f"{view.label}: {err}")
        st.stop()


def field_support(view: ModelView) -> FieldSupport:
    """Cached points (or, for a stored source, the model's coupled pairs) that its exact fields average over."""
    return state.memo("support", view, (), lambda: compute.field_support(view.flow, view.data))
