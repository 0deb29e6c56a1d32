"""Reflow on the explorer's pages: teacher against its reflowed student (Compare), and "Reflow this model" (Train).

The figures are one core call (`flowscope.evaluation.fewstep.few_step_reports`: straightness and W2 / floor of Euler
samples from the same noise); the reflow itself is `reflower.run`. This module only wires widgets and plots.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import streamlit as st

from flowscope.evaluation.fewstep import EULER_STEPS, FewStepReport, few_step_reports
from flowscope.training.reflow import ReflowProgress

from . import jobs, plots, reflower, state, widgets
from .state import ModelView

__all__ = ["TEACHER_KEY", "compare_section", "reflow_section", "reflow_work", "teacher_key"]

#: ModelView.info key of a session student: the key of the model it was reflowed from.
TEACHER_KEY = "teacher_key"
#: Points per W2 draw and draws in the explorer's figures (the bench uses 2000 x 3).
POINTS, DRAWS = 1000, 2


def teacher_key(view: ModelView) -> str | None:
    """The key of a reflowed model's teacher when it can be opened: the session model it came from, or the zoo
    model its file names; None for a model that was not reflowed (or whose teacher is gone)."""
    options = state.model_options()
    key = view.info.get(TEACHER_KEY)
    if isinstance(key, str) and key in options:
        return key
    record = view.flow.info.get("reflow") or {}
    name = f"zoo:{record.get('teacher')}"
    return name if record and name in options else None


def _reports(teacher: ModelView, student: ModelView) -> list[FewStepReport]:
    """Both models' few-step figures from the same noise, against the student's data (memoised)."""
    def compute() -> list[FewStepReport]:
        return few_step_reports({f"teacher: {teacher.label}": teacher.flow, f"student: {student.label}": student.flow},
                                student.data, steps=EULER_STEPS, n=min(POINTS, len(student.data) // 2),
                                repeats=DRAWS, trajectory_points=150)
    return state.memo("reflow_reports", student, (teacher.cache_id,), compute)


def compare_section(views: list[ModelView]) -> None:
    """Compare's reflow section: for a reflowed model among A and B, it and its teacher from the same noise."""
    st.subheader("Reflow: teacher and student")
    found = [(v, teacher_key(v)) for v in views]
    student, key = next(((v, k) for v, k in found if k is not None), (None, None))
    if student is None or key is None:
        st.caption("Pick a reflowed model as A or B (for example moons-reflow, or one made with \"Reflow this model\" "
                   "on the Train page) to see it beside its teacher: reflow (Liu et al., ICLR 2023) trains again on "
                   "the teacher's own (noise, sample) pairs, which straightens the paths.")
        return
    teacher = widgets.open_model(key)
    with st.spinner("Sampling both models at 1 to 32 Euler steps ..."):
        reports = _reports(teacher, student)
    if student.flow.dim == 2:
        traj = [r.trajectory.numpy() for r in reports]
        bounds = plots.bounds_of(student.data[:2000], *[t[0] for t in traj], *[t[-1] for t in traj])
        st.plotly_chart(plots.trajectories_side_by_side(traj, [r.name for r in reports], bounds,
                                                        data=[student.data[:1000]] * 2), key="reflow_traj")
    rows = [{"model": r.name, "straightness": round(r.straightness, 4),
             **{f"W2/floor {k} step{'s' if k > 1 else ''}": round(r.w2_ratio[k], 2) for k in EULER_STEPS}}
            for r in reports]
    st.dataframe(rows, hide_index=True)
    st.plotly_chart(plots.euler_steps_figure([(r.name, list(r.w2_ratio), list(r.w2_ratio.values()))
                                              for r in reports]), key="reflow_steps")
    factor = reports[0].straightness / max(reports[1].straightness, 1e-12)
    st.caption(f"Both start from the same {POINTS * DRAWS:,} noise points. The student's paths are {factor:.0f}x "
               f"straighter (S = ∫ E‖(x1 − x0) − v(x_t, t)‖² dt); with straight paths a few Euler steps land where "
               f"the teacher needs many. W2 / floor: {DRAWS} draws of {POINTS:,} samples against the data; 1 is as "
               "close as a second draw of the data.")


def reflow_section() -> None:
    """Train's "Reflow this model": reflow the selected model with live progress; the student joins the session."""
    st.subheader("Reflow this model")
    key = st.session_state.get(state.MODEL_KEY) or state.default_key(state.model_options())
    if key is None:
        st.caption("Train or pick a model first.")
        return
    view = widgets.open_model(key, images=True)
    if view.flow.image is not None:
        st.caption(f"**{view.label}** is an image model: the explorer reflows vector models only (drawing tens of "
                   "thousands of (noise, image) pairs with dopri5 would take a CPU server many minutes).")
        return
    st.caption(f"Draws (noise, sample) pairs from **{view.label}** with its ODE (dopri5) and trains a student on "
               "them with straight paths, starting from its weights (1-rectified flow). Then open Compare to see "
               "both from the same noise.")
    left, right = st.columns(2)
    pairs = left.select_slider("Pairs", reflower.PAIRS, value=10000, key="reflow_pairs")
    steps = right.select_slider("Training steps", reflower.STEPS, value=1000, key="reflow_steps")
    if not st.button("Reflow this model", icon=":material/straighten:", key="reflow_go"):
        return
    settings = reflower.ReflowSettings(pairs=int(pairs), steps=int(steps))
    name = view.label.removesuffix(" (this session)")
    # the sidebar and Train's live panel pick the job up; its student is selected when it ends
    widgets.start_job(f"{name} · reflow", settings.steps, reflow_work(view, name, settings, state.session_models()))


def reflow_work(view: ModelView, name: str, settings: reflower.ReflowSettings,
                models: dict[str, ModelView]) -> Callable[[jobs.Job], str]:
    """What a reflow job does in its worker thread (no Streamlit calls): draw the pairs and train the student
    with progress reported into the job and its Stop honoured; the student is kept in `models`."""
    teacher, data, dataset, teacher_view_key = view.flow, view.data, view.dataset, view.key
    labels = None if view.data_labels is None else np.asarray(view.data_labels)

    def work(job: jobs.Job) -> str:
        losses: list[float] = []
        started = time.perf_counter()

        def report(p: ReflowProgress) -> None:
            if p.loss is not None:
                losses.append(p.loss)
            job.report(p.done if p.stage == "train" else 0, p.loss, time.perf_counter() - started, list(losses))

        outcome = reflower.run(teacher, settings, teacher_name=name, report=report,
                               should_stop=lambda: job.stop_requested)
        info = {"note": outcome.message, "status": outcome.status, "losses": outcome.losses,
                "seconds": outcome.seconds, TEACHER_KEY: teacher_view_key}
        student = state.new_session_model(models, outcome.flow.to("cpu"), data, f"{name} · reflow", dataset, info,
                                          labels=labels)
        return student.key

    return work
