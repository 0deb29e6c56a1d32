"""Reflow in the explorer (AppTest): "Reflow this model" on Train, then teacher and student side by side on Compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from ui_support import APP, finish_jobs

from flowscope.evaluation.fewstep import EULER_STEPS
from flowscope_ui import plots, reflow_panel, state

TIMEOUT = 180


@pytest.mark.slow
def test_reflow_this_model_then_compare_teacher_and_student(zoo_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    at.select_slider(key="reflow_pairs").set_value(5000)
    at.select_slider(key="reflow_steps").set_value(500)
    at.button(key="reflow_go").click().run()
    finish_jobs(at, TIMEOUT)  # the reflow is a background job, as trainings are
    assert not at.exception, [e.value for e in at.exception]
    assert any("reflowed moons-ot" in s.value for s in at.success)  # the result section shows the student
    models = at.session_state[state.SESSION_MODELS]
    (key, student), = models.items()
    assert at.session_state[state.MODEL_KEY] == key
    assert student.info[reflow_panel.TEACHER_KEY] == "zoo:moons-ot"
    assert student.flow.info["reflow"]["teacher"] == "moons-ot" and student.flow.coupling == "reflow"

    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    chart_keys = {c.proto.id for c in at.get("plotly_chart")}
    assert any("reflow_traj" in k for k in chart_keys) and any("reflow_steps" in k for k in chart_keys)
    table = at.dataframe[-1].value
    teacher, reflowed = table.iloc[0], table.iloc[1]
    assert str(teacher["model"]).startswith("teacher: moons-ot") and str(reflowed["model"]).startswith("student")
    assert reflowed["straightness"] < teacher["straightness"] / 5
    assert reflowed["W2/floor 2 steps"] < teacher["W2/floor 2 steps"]


def test_compare_without_a_reflowed_model_says_how_to_get_one(zoo_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert any("Pick a reflowed model" in c.value for c in at.caption)


def test_euler_steps_figure_has_a_series_per_model_and_the_floor() -> None:
    fig = plots.euler_steps_figure([("teacher", EULER_STEPS, np.linspace(8, 1.2, 6)),
                                    ("student", EULER_STEPS, np.full(6, 1.05))])
    assert [t.name for t in fig.data] == ["teacher", "student"]
    assert list(fig.data[0].x) == list(EULER_STEPS)
    assert fig.layout.shapes[0].y0 == 1.0
