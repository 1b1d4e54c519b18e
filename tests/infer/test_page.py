"""The Inference page (AppTest): preselect a run by link, stream a demo, classify, run a benchmark job."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from tests.pages.conftest import ROOT, assert_clean


def _page(run: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views/infer.py"), default_timeout=120)
    if run:
        at.query_params["run"] = run
    return at.run()


def test_link_preselects_run_and_demo_streams(lm_run, cls_run):
    at = _page("lm-char")
    assert_clean(at)
    assert at.selectbox(key="infer_run").value == "lm-char"
    at.selectbox(key="infer_backend").set_value("torch").run()
    at.number_input(key="infer_max_new").set_value(10).run()
    at.button(key="infer_generate").click().run()
    assert_clean(at)
    labels = [m.label for m in at.metric]
    assert "Time to first token" in labels and "Tokens/s" in labels
    assert any(m.label == "New tokens" and m.value == "10" for m in at.metric)
    at.run()  # any later rerun (another button, a widget): the text stays beside its figures
    assert_clean(at)
    assert any(t.value.startswith("Once upon a time") for t in at.text), [t.value for t in at.text]
    assert any(m.label == "New tokens" and m.value == "10" for m in at.metric)


def test_classifier_shows_probability_chart(cls_run, lm_run):
    at = _page("cls")
    assert at.selectbox(key="infer_run").value == "cls"
    at.selectbox(key="infer_backend").set_value("torch").run()
    at.button(key="infer_classify").click().run()
    assert_clean(at)
    assert [c for c in at.get("plotly_chart") if c.key == "infer_probs"]  # beside any serving chart


def test_unavailable_precision_is_one_error_line(lm_run):
    at = _page("lm-char")
    at.selectbox(key="infer_backend").set_value("onnxruntime").run()
    at.selectbox(key="infer_dtype").set_value("bf16").run()
    assert not at.exception and len(at.error) == 1 and "fp32, fp16, int8" in at.error[0].value


def test_benchmark_job_fills_the_table(lm_run):
    from engine.infer import jobs

    at = _page("lm-char")
    at.selectbox(key="infer_backend").set_value("torch").run()
    at.number_input(key="infer_bench_seq").set_value(16).run()
    at.button(key="infer_bench_start").click().run()
    job = at.session_state["infer_bench_job"]
    deadline = time.time() + 180
    while jobs.status(job)["status"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert jobs.status(job)["status"] == "done", jobs.status(job)
    at.run()  # the fragment sees the finished job and reruns the page
    at.run()
    assert_clean(at)
    assert at.dataframe and any("p50_ms" in d.value.columns for d in at.dataframe)
    assert len(at.get("download_button")) >= 2
