"""The Sweeps page in AppTest: an empty workspace, bad input answered with one st.error, and a real (tiny)
sweep started from the page whose trials appear in the table while it runs, then the best configuration
one click from a full run."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.lab import tune, tune_jobs
from tests.pages.conftest import ROOT, assert_clean, run_page
from tests.sweep_spaces import TINY_SPACE

PAGE = str(ROOT / "views/tune.py")


@pytest.fixture(autouse=True)
def _end_children(end_children) -> None:
    """Processes started by these tests end with them (tests/pages/conftest.py)."""



def _page() -> AppTest:
    return run_page(PAGE, timeout=90)


def _fill(at: AppTest, space: str, name: str, trials: int = 2) -> None:
    at.selectbox(key="tune_sample").set_value("arithmetic")
    at.number_input(key="tune_trials").set_value(trials)
    at.number_input(key="tune_steps").set_value(4)
    at.run()
    at.text_area(key="tune_space_lm_4_None").set_value(space)
    at.text_input(key="tune_name").set_value(name)


def test_empty_workspace_shows_the_form_and_an_info():
    at = _page()
    assert any("No sweeps yet" in i.value for i in at.info)
    assert at.button(key="tune_start")


def test_equal_time_trials_put_their_length_in_the_space():
    at = _page()
    at.radio(key="tune_length").set_value("seconds").run()
    at.number_input(key="tune_trial_s").set_value(20.0).run()
    assert_clean(at)
    text = at.text_area(key="tune_space_lm_None_20.0").value
    assert "trial_seconds = 20.0" in text and "max_steps" not in text and "eval_every" not in text


def test_bad_input_is_one_error_line():
    at = _page()
    _fill(at, TINY_SPACE.replace("low = 1e-4\nhigh = 1e-2", "low = 1e-2\nhigh = 1e-4"), "rev")
    at.button(key="tune_start").click().run()
    assert_clean(at, errors_allowed=True)
    assert [e.value for e in at.error] and "reversed" in at.error[0].value and len(at.error) == 1
    at = _page()
    _fill(at, TINY_SPACE, "a/b")
    at.button(key="tune_start").click().run()
    assert len(at.error) == 1 and "path or special characters" in at.error[0].value
    assert not tune_jobs.list_studies()


@pytest.mark.timeout(300)
def test_start_a_sweep_and_see_trials_appear_live():
    at = _page()
    _fill(at, TINY_SPACE, "apptest")
    at.button(key="tune_start").click().run()
    assert_clean(at)
    deadline = time.monotonic() + 240
    seen_running = False
    while True:
        frames = [df.value for df in at.dataframe]
        rows = frames[0] if frames else None
        if rows is not None and len(rows):
            seen_running = seen_running or tune_jobs.sweep_alive(tune.study_dir_for("apptest"))
            if not tune_jobs.sweep_alive(tune.study_dir_for("apptest")) and len(rows) == 2:
                break
        assert time.monotonic() < deadline, "trials did not appear"
        time.sleep(1.5)
        at.run()
        assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["outcome"]) <= {"complete", "pruned", "duplicate"}
    assert (table["predicted s"] > 0).all() and (table["measured s"] > 0).all()
    assert any("apptest: 2 trials done" in s.value for s in at.subheader)
    assert at.button(key="tune_best")
    at.button(key="tune_best").click().run()
    assert_clean(at)
    assert any("apptest-best" in s.value for s in at.success)
