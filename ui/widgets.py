"""Widgets and blocks shared by the pages: header, model picker, projection picker, solver controls, cached
trajectories and the other per-model results the pages share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

from flowscope import SolverConfig
from flowscope.evaluation.records import ImageReport, QualityReport, Row, stored_report
from flowscope.fields.fieldview import FieldSupport
from flowscope.solver.sampling import FIXED_STEP_METHODS, METHODS
from flowscope.zoo import registry as zoo

from . import compute, jobs, state
from .layout import header as header  # re-exported: pages use widgets.header; the start page, layout.header
from .plots import Bounds
from .state import ModelView

#: torch threads of the whole server, set once when the explorer first loads this module (once per process):
#: the views' tensors are small, one thread per session's work is fastest, and on a small machine it keeps
#: sessions (and the trainings in job threads, which never set it themselves) from fighting over cores.
SERVER_THREADS = 1
torch.set_num_threads(SERVER_THREADS)

_PICKER = "_model_picker"
NO_MODEL = (
    "No model to show yet. Build the pretrained models with `flowscope zoo build` "
    "(or `flowscope zoo build --only moons-ot` for one), or train one on the **Train** page."
)


def sidebar() -> None:
    """Every run, before a page draws: an interrupted training settled, the model menu (the server's torch
    threads were set once, `SERVER_THREADS`)."""
    training_status()  # a training of this session: its progress, or its finished model selected
    model_picker()


def session_id() -> str:
    """This browser session's id (the owner of its training jobs)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def my_jobs() -> list[jobs.Job]:
    """This session's training jobs not yet collected (each marked as seen: the session is still there)."""
    mine = jobs.manager().jobs_of(session_id())
    for job in mine:
        job.touch()
    return mine


def collect(job: jobs.Job) -> None:
    """A finished job's model becomes the session's selected model (or its failure is kept to be shown)."""
    jobs.manager().collect(job)
    if job.state == "done" and isinstance(job.result, str):
        st.session_state[state.MODEL_KEY] = job.result
        st.session_state[state.LAST_TRAINED] = job.result
    else:
        st.session_state[TRAIN_FAILED] = f"{job.label}: {job.error or 'the training ended without a model'}"


#: st.session_state key of the message of a training that ended without a model.
TRAIN_FAILED = "_train_failed"


def start_job(label: str, steps: int, work: Callable[[jobs.Job], Any]) -> None:
    """Submit a training (or reflow) as this session's background job, then rerun so that the sidebar and the
    Train page's live panel pick it up; a second one while the first runs is refused, with a warning."""
    try:
        jobs.manager().submit(session_id(), label, steps, work)
    except jobs.JobBusy as err:
        st.warning(f"Not started: {err}.")
        return
    st.session_state.pop(TRAIN_FAILED, None)
    st.rerun()


def job_line(job: jobs.Job) -> str:
    """One line of a job's state: waiting (and why), or its step, loss and time."""
    if job.state == "waiting":
        running, waiting = jobs.manager().counts()
        return (f"Waiting: {running} training{'s are' if running != 1 else ' is'} running on this server (at most "
                f"{jobs.manager().max_running} at once, {waiting} waiting); yours starts when one ends.")
    loss = "" if job.loss is None else f" · loss {job.loss:.4f}"
    return f"step {job.step:,} / {job.steps:,}{loss} · {job.seconds:.0f} s"


def _training_sidebar() -> None:
    """The sidebar's training block: progress and Stop while it runs; when it ends, its model is selected."""
    for job in my_jobs():
        if not job.active:
            collect(job)
            st.rerun(scope="app")  # every page now shows the new model (or the message)
        st.markdown(f"**Training** {job.label}")
        st.progress(job.step / max(job.steps, 1), text=job_line(job))
        st.button("Stop training", key=f"job_stop_{job.id}", on_click=job.stop, icon=":material/stop:",
                  help="Stops at the next report and keeps the model trained so far.",
                  disabled=job.stop_requested)


def training_status() -> None:
    """Draw this session's training in the sidebar on every page, refreshed each second while it runs."""
    mine = my_jobs()
    if not mine:
        return
    with st.sidebar:
        st.fragment(_training_sidebar, run_every=1.0 if any(j.active for j in mine) else None)()


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


def current_model(images: bool = False) -> ModelView:
    """The selected model, or a clear message and the end of the page when there is none or it is broken; an
    image model only where the page draws images (`images`), else a pointer to the Images page."""
    key = st.session_state.get(state.MODEL_KEY) or state.default_key(state.model_options())
    if key is None:
        st.info(NO_MODEL)
        st.stop()
    return open_model(key, images)


def open_model(key: str, images: bool = False) -> ModelView:
    """The model of `key`, or an error on the page (missing/corrupt file, no data of its dimension) and the
    end of the page; for an image model on a page that draws points in a plane (`images` False), a note that
    sends the user to the Images page, and the end of the page."""
    try:
        view = state.resolve(key)
    except (zoo.ZooError, KeyError) as err:
        st.error(f"Cannot show model {key.removeprefix('zoo:')!r}: {err}")
        st.stop()
    problem = drawable(view)
    if problem:
        st.error(f"Model {view.label!r} cannot be drawn: {problem}.")
        st.stop()
    if view.flow.image is not None and not images:
        image_model_note(view)
        st.stop()
    return view


IMAGES_PAGE = "views/images.py"


def image_model_note(view: ModelView) -> None:
    """Say that an image model is drawn on the Images page (this page draws points in a plane), with a link."""
    assert view.flow.image is not None
    c, h, w = view.flow.image.shape
    st.info(f"**{view.label}** is an image model of {c} × {h} × {w} pixels ({view.flow.dim} dimensions): this page "
            "draws points and fields in a plane, which says little about images. Its samples, their trajectories, "
            "the model's prediction of x1 at any t and the memorisation check are on the Images page.",
            icon=":material/image:")
    st.page_link(IMAGES_PAGE, label="Open the Images page", icon=":material/image:")


def drawable(view: ModelView) -> str | None:
    """Why the views cannot draw a model, or None: they need D >= 2 and at least 4 data points of D columns."""
    dim = view.flow.dim
    if dim < 2:
        return f"the views need a model of at least 2 dimensions, and this one is {dim}-dimensional"
    if view.data.ndim != 2 or view.data.shape[1] != dim or len(view.data) < 4:
        shape = "×".join(str(n) for n in view.data.shape)
        return (f"the views need at least 4 points of its data ({dim} columns) and have {shape}; the model file "
                "carries no data sample, so open it on the Train page with its data")
    return None


def model_caption(view: ModelView) -> None:
    """One line about the model under the page's header."""
    st.caption(caption_text(view))


def caption_text(view: ModelView) -> str:
    """One line about the model: data, path, coupling, source and its recorded quality."""
    flow = view.flow
    parts = [f"**{view.label}**", f"data: {view.dataset}", f"path: {flow.path!r}", f"coupling: {flow.coupling}",
             "source: " + ("N(0, I)" if flow.source is None else "samples")]
    report = recorded_report(view)
    if isinstance(report, QualityReport):
        parts.append(f"{report.headline()} (recorded: dopri5, 2,000 samples vs fresh data, mean of 10 draws)")
    if "note" in view.info:
        parts.append(str(view.info["note"]))
    return " · ".join(parts)


def recorded_report(view: ModelView) -> QualityReport | ImageReport | None:
    """The quality recorded with a model (the zoo's manifest row, else its file), typed; None if none was."""
    return stored_report(view.info.get("metrics") or view.flow.info.get("metrics"))


def report_table(rows: list[Row]) -> list[dict[str, str]]:
    """A report's display rows (`rows()`, as the CLI prints them) as a table for st.dataframe."""
    return [{"figure": r.label, "value": r.value, "note": r.note} for r in rows]


def report_caption(rows: list[Row]) -> tuple[str, str]:
    """A report's display rows as one caption line (label and value of each) and its help (each row's note)."""
    return (" · ".join(f"{r.label} {r.value}" for r in rows),
            "\n\n".join(f"{r.label}: {r.note}" for r in rows if r.note))


def solver_picker(key: str, default_method: str = "rk4", default_steps: int = 20) -> SolverConfig:
    """Solver and step count (steps apply to the fixed-step methods; dopri5 adapts at 1e-5 tolerances)."""
    left, right = st.columns(2)
    method = left.selectbox("ODE solver", METHODS, index=METHODS.index(default_method), key=f"{key}_method",
                            help="euler, midpoint and rk4 take a fixed number of steps (1, 2 and 4 velocity "
                                 "evaluations each); dopri5 chooses its steps for atol = rtol = 1e-5.")
    steps = right.slider("Solver steps", 1, 100, default_steps, key=f"{key}_steps",
                         disabled=method not in FIXED_STEP_METHODS, help="Fixed-step solvers only.")
    return SolverConfig(method=method, steps=steps)


# --- a conditional model's class and guidance scale ---------------------------------------------------------


@dataclass(frozen=True)
class Guide:
    """What a conditional model is sampled and drawn for: a class (index into flow.labels; None: its
    unconditional field) and the guidance scale w of v_w = v(x, t, y) + w (v(x, t, y) - v(x, t, none))."""

    label: int | None = None
    name: str | None = None
    w: float = 0.0

    @property
    def key(self) -> tuple[int | None, float]:
        """The guide in cache keys: (class, w), and (None, 0) without a class (w then changes nothing)."""
        return (self.label, self.w) if self.label is not None else (None, 0.0)


UNCONDITIONAL = Guide()
_GUIDES = "_guides"  # st.session_state: model key -> {"label": class index or -1, "w": float}, kept across pages
NO_CLASS = -1
#: The guidance slider: w from 0 to GUIDANCE_MAX in steps of GUIDANCE_STEP.
GUIDANCE_MAX, GUIDANCE_STEP = 5.0, 0.5
GUIDANCE_HELP = ("Classifier-free guidance: the model's field v_w = v(x, t, y) + w (v(x, t, y) − v(x, t, none)). "
                 "w = 0 is plain conditional sampling; larger w pushes samples away from the other classes. The "
                 "same w as Ho & Salimans' guidance weight and Meta's flow_matching cfg_scale.")


def _guide_choice(view: ModelView) -> dict[str, Any]:
    """The remembered class and w of a conditional model (no class, w = 0 until the user picks)."""
    store: dict[str, dict[str, Any]] = st.session_state.setdefault(_GUIDES, {})
    chosen = store.setdefault(view.key, {"label": NO_CLASS, "w": 0.0})
    if not NO_CLASS <= int(chosen["label"]) < len(view.flow.labels):
        chosen["label"] = NO_CLASS
    return chosen


def _remember_guide(model_key: str, widget: str, field: str) -> None:
    """Copy a class or guidance widget's value to the model's remembered guide (a callback)."""
    st.session_state[_GUIDES][model_key][field] = st.session_state[widget]


def remembered_guide(view: ModelView) -> Guide:
    """The class and w the user last picked for a model, without drawing a widget (unconditional if none)."""
    if not view.conditional:
        return UNCONDITIONAL
    chosen = _guide_choice(view)
    label = int(chosen["label"])
    if label == NO_CLASS:
        return UNCONDITIONAL
    return Guide(label=label, name=view.flow.labels[label], w=float(chosen["w"]))


def guidance_picker(view: ModelView) -> Guide:
    """The sidebar's class and guidance scale of a conditional model, remembered per model for every page.

    Drawn only for a conditional model (others: `UNCONDITIONAL`, no widget): a class of the model, or
    "none (unconditional)", and w from 0 to GUIDANCE_MAX (used only with a class).
    """
    if not view.conditional:
        return UNCONDITIONAL
    chosen = _guide_choice(view)
    names = view.flow.labels
    keys = {"label": f"_class_{view.key}", "w": f"_guidance_{view.key}"}
    for field, widget in keys.items():
        st.session_state[widget] = chosen[field]
    with st.sidebar:
        st.selectbox("Class", [NO_CLASS, *range(len(names))], key=keys["label"], on_change=_remember_guide,
                     args=(view.key, keys["label"], "label"),
                     format_func=lambda k: "none (unconditional)" if k == NO_CLASS else names[k],
                     help=f"This model is conditional on {len(names)} classes: draw its samples and fields for "
                          "one of them, or its unconditional field (the 'no label' token it learned from label "
                          "dropout).")
        st.slider("Guidance scale w", 0.0, GUIDANCE_MAX, step=GUIDANCE_STEP, key=keys["w"],
                  on_change=_remember_guide, args=(view.key, keys["w"], "w"),
                  disabled=chosen["label"] == NO_CLASS, help=GUIDANCE_HELP)
    return remembered_guide(view)


def class_data(view: ModelView, label: int) -> np.ndarray:
    """The model's data points of class `label` (cached); all of them when its data carry no labels."""
    if view.data_labels is None:
        return view.data
    return state.memo("class_data", view, (label,), lambda: view.data[view.data_labels == label])


def trajectories(view: ModelView, solver: SolverConfig, n: int, frames: int = 41,
                 guide: Guide = UNCONDITIONAL) -> compute.Trajectories:
    """Cached particle trajectories of the model from seeded noise (see compute.trajectories), for a
    conditional model of the guide's class at its w; says so when the solver fell back to fixed steps."""
    settings = (solver.method, solver.steps, n, frames, *guide.key)
    result: compute.Trajectories = state.memo(
        "trajectories", view, settings,
        lambda: compute.trajectories(view.flow, n, solver, n_frames=frames, label=guide.label, guidance=guide.w))
    if result.fallback is not None:
        st.warning(f"{view.label}: {result.fallback}.")
    return result


def field_support(view: ModelView) -> FieldSupport:
    """Cached points (or, for a stored source, the model's coupled pairs) that its exact fields average over,
    with their classes for a conditional model whose data carry labels."""
    return state.memo("support", view, (), lambda: compute.field_support(view.flow, view.data, view.data_labels))


def view_width_note(support: FieldSupport) -> str:
    """The sentence saying that the exact fields are drawn at a view width (pairs trained with kernel width 0),
    else "": every page that draws them states it the same way."""
    if support.view_sigma is None:
        return ""
    return (f"This model was trained with kernel width 0, where its exact field is a sum of Diracs on its (x0, x1) "
            f"pairs' lines; its exact field and p_t are drawn at view width {support.view_sigma:g} (normalised "
            "units), the field of the pairs smoothed by that kernel.")


def view_width_caption(support: FieldSupport) -> None:
    """Caption the exact fields' view width when they are not drawn at the model's own (`view_width_note`)."""
    note = view_width_note(support)
    if note:
        st.caption(note)


def class_support(view: ModelView, label: int) -> FieldSupport:
    """Cached field support of class `label`'s data points alone: its exact p_t(x | y) (Paths' density)."""
    return state.memo("class_support", view, (label,),
                      lambda: compute.field_support(view.flow, class_data(view, label)))


# --- the 2-D view of a model (a projection for D > 2) ------------------------------------------------------

_PROJECTIONS = "_projections"  # st.session_state: model key -> {"kind", "first", "second"}, kept across pages
PRINCIPAL, COORDINATES = "Principal axes", "Two coordinates"


def _choice(view: ModelView) -> dict[str, Any]:
    """The remembered view of a model (principal axes and its first two columns until the user picks)."""
    store: dict[str, dict[str, Any]] = st.session_state.setdefault(_PROJECTIONS, {})
    return store.setdefault(view.key, {"kind": PRINCIPAL, "first": 0, "second": 1})


def _remember(model_key: str, widget: str, field: str) -> None:
    """Copy a projection widget's value to the model's remembered view (a callback: before the script runs)."""
    st.session_state[_PROJECTIONS][model_key][field] = st.session_state[widget]


def view_axes(view: ModelView, choice: tuple[str | int, ...] = compute.PCA) -> compute.ViewAxes:
    """The (cached) view of a model for a choice: ("pca",) or ("coords", i, j); a 2-D model's own axes."""
    if view.flow.dim == 2:
        choice = ()
    return state.memo("axes", view, choice,
                      lambda: compute.view_axes(view.flow, view.data, view.columns, choice or compute.PCA))


def remembered_axes(view: ModelView) -> compute.ViewAxes:
    """The view of a model that the user last picked (principal axes by default), without drawing a widget."""
    if view.flow.dim == 2:
        return view_axes(view)
    chosen = _choice(view)
    choice: tuple[str | int, ...] = compute.PCA
    if chosen["kind"] == COORDINATES and chosen["first"] != chosen["second"]:
        choice = ("coords", int(chosen["first"]), int(chosen["second"]))
    try:
        return view_axes(view, choice)
    except ValueError:  # principal axes of data with fewer than two varying columns: its first two columns
        return view_axes(view, ("coords", 0, 1))


def projection_picker(view: ModelView, label: str = "") -> compute.ViewAxes:
    """The sidebar's choice of the 2-D view of a D > 2 model, remembered per model for every page.

    "Principal axes" (the default) or "Two coordinates" of its columns. A 2-D model is drawn in its own
    coordinates: no widget. `label` names the model when a page shows several ("A", "B").
    """
    if view.flow.dim == 2:
        return view_axes(view)
    chosen = _choice(view)
    names = view.column_names
    keys = {field: f"_projection_{field}_{view.key}" for field in ("kind", "first", "second")}
    for field, widget in keys.items():
        st.session_state[widget] = chosen[field]
    with st.sidebar:
        st.radio(f"View of {label + ': ' if label else ''}{view.flow.dim}-D model", [PRINCIPAL, COORDINATES],
                 key=keys["kind"], horizontal=True, on_change=_remember, args=(view.key, keys["kind"], "kind"),
                 help=f"Its {view.flow.dim} dimensions are drawn through a 2-D projection: the principal axes of "
                      "its data (in the model's normalised coordinates), or two of its columns.")
        if chosen["kind"] == COORDINATES:
            left, right = st.columns(2)
            for column, field, title in ((left, "first", "horizontal axis"), (right, "second", "vertical axis")):
                column.selectbox(title, range(view.flow.dim), format_func=names.__getitem__, key=keys[field],
                                 on_change=_remember, args=(view.key, keys[field], field))
            if chosen["first"] == chosen["second"]:
                st.error(f"Choose two different columns for the axes (both are {names[chosen['first']]!r}); "
                         "the views show the principal axes meanwhile.")
    axes = remembered_axes(view)
    if chosen["kind"] == PRINCIPAL and axes.key != "pca":
        st.sidebar.warning("Its data have fewer than two varying columns, so there are no principal axes: "
                           "the views show its first two columns.")
    return axes


def projected_trajectories(view: ModelView, axes: compute.ViewAxes, solver: SolverConfig, n: int,
                           frames: int = 41, guide: Guide = UNCONDITIONAL) -> compute.Trajectories:
    """The cached trajectories of `trajectories`, in the view's plane coordinates [T, n, 2]."""
    run = trajectories(view, solver, n, frames, guide)
    if axes.identity:
        return run
    return state.memo("projected_trajectories", view, (solver.method, solver.steps, n, frames, axes.key, *guide.key),
                      lambda: compute.Trajectories(points=compute.project(axes.projection, run.points),
                                                   times=run.times, nfe=run.nfe))


def projected_data(view: ModelView, axes: compute.ViewAxes, n: int | None = None) -> np.ndarray:
    """The first n of the model's data points (all if None), in the view's plane coordinates [n, 2] (cached)."""
    points = view.data if n is None else view.data[:n]
    if axes.identity:
        return points
    return state.memo("projected_data", view, (axes.key, n), lambda: compute.project(axes.projection, points))


def bounds(view: ModelView, axes: compute.ViewAxes) -> Bounds:
    """The axes' ranges of the model's views (cached per model and projection)."""
    if axes.identity:
        return compute.view_bounds(view.flow, view.data)
    return state.memo("bounds", view, (axes.key,),
                      lambda: compute.view_bounds(view.flow, view.data, axes.projection, axes.square))


def data_mean(view: ModelView) -> np.ndarray:
    """Where a slice of a D > 2 model passes by default: the mean of its data [D] (cached)."""
    return state.memo("data_mean", view, (), lambda: compute.slice_point(view.data, field_support(view), 0, "mean"))
