"""A newcomer's first visit (a fresh workspace, the shipped demo run registered on first open): the Inference
page streams the demo, the Overview's model card shows it, and the lab page refuses to delete it."""

from __future__ import annotations

import pytest

from engine.store import DEMO_RUN, Registry
from tests.pages.conftest import metrics


def test_inference_page_streams_the_demo_in_a_fresh_workspace(demo_home, page):
    pytest.importorskip("torch")
    at = page("views/infer.py")
    assert not [i.value for i in at.info if "No trained run" in i.value]
    assert at.selectbox(key="infer_run").value == DEMO_RUN
    at.selectbox(key="infer_backend").set_value("torch").run()
    at.number_input(key="infer_max_new").set_value(24).run()
    at.button(key="infer_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    last = at.session_state["infer_last"]
    assert last["text"].startswith("Once upon a time") and last["new_tokens"] == 24 and last["backend"] == "torch"


def test_overview_model_card_shows_the_demo(demo_home, page):
    at = page("views/home.py")
    shown = metrics(at)
    assert f"Run {DEMO_RUN} (finished)" in shown, shown
    assert any("demo model shipped with Preflight" in c.value for c in at.caption)


def test_lab_page_refuses_to_delete_the_demo_with_one_line(demo_home, page):
    at = page("views/lab.py")
    at.selectbox(key="lab_target").set_value(DEMO_RUN).run()
    at.button(key="lab_delete").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "demo model shipped with Preflight" in errors[0] and "\n" not in errors[0]
    assert Registry().get_run(DEMO_RUN)["shipped"]
