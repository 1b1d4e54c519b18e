"""The model-lab page in AppTest: an empty workspace, a real (short) training run started from the page
and polled to the end, its metrics, curves, runs table, comparison, generation and deletion; bad data
answered with one st.error (never an exception); calibration recorded in the registry.

AppTest runs the page in this process, so the suite's PREFLIGHT_HOME (tests/conftest.py) is the
workspace of both the page and the Registry() the tests read. Training and calibration run in child
processes, which are ended at teardown if a test fails before they finish."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from engine import workspace
from engine.store import Registry
from engine.units import parse_quantity
from tests.pages.conftest import ROOT, assert_clean, metrics, run_page

PAGE = str(ROOT / "views/lab.py")
RUN_TIMEOUT_S = 150  # 20 tiny steps of 8 sequences: ~10 s on 2 idle cores, ~40 s on 2 busy ones


@pytest.fixture(autouse=True)
def _end_children(end_children) -> None:
    """Processes started by these tests end with them (tests/pages/conftest.py)."""



def _page() -> AppTest:
    return run_page(PAGE, timeout=90)


def _status(at: AppTest) -> str:
    """The selected run's status from its subheader ('✅ tiny: finished' -> 'finished'), or ''."""
    heads = [s.value for s in at.subheader if ": " in s.value]
    return heads[0].rsplit(": ", 1)[1] if heads else ""


def _poll(at: AppTest, done: Callable[[AppTest], bool], timeout_s: float, what: str,
          errors_allowed: bool = False) -> None:
    """Rerun the page (as its fragments would) until ``done``; no exception on any run."""
    deadline = time.monotonic() + timeout_s
    while not done(at):
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s; status {_status(at)!r}"
        time.sleep(1.0)
        at.run()
        assert_clean(at, errors_allowed=errors_allowed)


def _number(text: str) -> float:
    value = parse_quantity(text, "metric")
    assert math.isfinite(value), text
    return value


def _start_tiny(at: AppTest, steps: int) -> None:
    at.selectbox(key="lab_preset").set_value("tiny")
    at.number_input(key="lab_steps_tiny").set_value(steps)
    at.number_input(key="lab_batch_tiny").set_value(8)  # 8 x 128 tokens a step: cheap on 2 shared cores
    at.selectbox(key="lab_device").set_value("cpu")
    at.button(key="lab_start").click().run()


def test_empty_workspace_shows_the_form_and_an_info():
    at = _page()
    assert any("No runs yet" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key="lab_start").disabled is False  # the built-in corpus needs no upload
    assert at.selectbox(key="lab_sample").value == "arithmetic"
    assert not at.get("plotly_chart")
    assert Registry().list_runs().empty


def test_short_run_trains_live_then_is_listed_compared_sampled_and_deleted():
    at = _page()
    _start_tiny(at, steps=20)
    assert_clean(at)
    reg = Registry()
    runs = reg.list_runs(kind="train")
    assert len(runs) == 1
    name = runs["name"].iloc[0]
    assert _status(at) in ("queued", "running", "finished")
    assert at.session_state["lab_run"] == name

    _poll(at, lambda a: _status(a) not in ("queued", "running", "stopping"), RUN_TIMEOUT_S, "the run did not end")
    assert _status(at) == "finished", [e.value for e in at.error]

    shown = metrics(at)
    train_loss, val_loss = _number(shown["Train loss"]), _number(shown["Validation loss"])
    assert 0 < train_loss < math.log(258) + 0.5  # below a uniform guess over the byte vocabulary
    assert 0 < val_loss < math.log(258) + 0.5
    assert _number(shown["Tokens/s"]) > 0
    assert shown["ETA"] == "–"  # finished
    progress = at.get("progress")
    assert progress and progress[0].proto.text == "step 20 of 20", [p.proto.text for p in progress]
    assert len(at.get("plotly_chart")) == 2, "the run's curve and the comparison chart"
    assert any(e.label == "Samples from the model" for e in at.expander)

    table = at.dataframe[0].value
    row = table[table["run"] == name].iloc[0]
    assert row["status"] == "finished" and row["steps"] == 20 and row["preset"] == "tiny"
    assert row["val loss"] == pytest.approx(val_loss, abs=1e-3)
    assert at.multiselect(key="lab_compare").value == [name]

    at.text_input(key="lab_prompt").set_value("12+7=")
    at.button(key="lab_generate").click().run()
    assert_clean(at)
    generated = [c.value for c in at.code if c.value.startswith("12+7=")]
    assert generated and len(generated[0]) > len("12+7="), [c.value for c in at.code]

    run_dir = reg.get_run(name)["run_dir"]
    assert at.selectbox(key="lab_target").value == name
    at.button(key="lab_delete").click().run()
    assert_clean(at)
    assert reg.list_runs().empty
    assert not (workspace.runs_dir() / name).exists() and not os.path.exists(run_dir)
    assert "lab_run" not in at.session_state
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def _single_label_csv() -> bytes:
    return ("text,label\n" + "".join(f"message number {i} about the order,spam\n" for i in range(60))).encode()


@pytest.mark.parametrize(("source", "task", "file", "expected"), [
    ("Uploaded dataset", "lm", ("short.txt", b"hello world\n", "text/plain"), "context"),
    ("Upload a file", "classify", ("one-label.csv", _single_label_csv(), "text/csv"), "single value"),
], ids=["too-short-for-the-context", "classify-with-one-label"])
def test_bad_data_ends_as_one_error_not_an_exception(source, task, file, expected):
    if source == "Uploaded dataset":  # uploaded earlier (here or on the data-checks page)
        workspace.save_upload(file[0], file[1])
    at = _page()
    at.radio(key="lab_source").set_value(source).run()
    assert_clean(at)
    if source == "Upload a file":
        assert at.button(key="lab_start").disabled, "Start needs a file first"
        at.file_uploader(key="lab_upload").set_value(file).run()
    else:
        assert at.selectbox(key="lab_upload_pick").value.name == file[0]
    at.radio(key="lab_task").set_value(task).run()
    assert_clean(at)
    _start_tiny(at, steps=5)
    assert not at.exception
    _poll(at, lambda a: _status(a) not in ("queued", "running"), 60, "the bad run did not fail", errors_allowed=True)
    assert _status(at) == "failed"
    assert len(at.error) == 1 and expected in at.error[0].value, [e.value for e in at.error]
    assert "Traceback" not in at.error[0].value


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_on_the_page():
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. the e2e session's server
    at = _page()
    at.selectbox(key="lab_device").set_value("cuda")
    at.button(key="lab_start").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "cuda" in at.error[0].value.lower(), [e.value for e in at.error]
    at = _page()
    at.selectbox(key="lab_cal_device").set_value("cuda")
    at.button(key="lab_cal_start").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "cuda" in at.error[0].value.lower(), [e.value for e in at.error]
    assert Registry().list_runs().empty, "nothing was started"
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before, "no process was started"


def test_calibration_is_recorded_and_shown_when_done():
    at = _page()
    at.selectbox(key="lab_cal_preset").set_value("tiny")
    at.selectbox(key="lab_cal_device").set_value("cpu")
    at.button(key="lab_cal_start").click().run()
    assert_clean(at)
    # the process registers itself only after importing torch: the page polls meanwhile, not waits
    assert any("Calibrating" in c.value for c in at.caption), [c.value for c in at.caption]
    reg = Registry()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        cal = reg.list_runs(kind="calibrate")
        if not cal.empty and cal["status"].iloc[0] not in ("queued", "running", "stopping"):
            break
        assert time.monotonic() < deadline, f"calibration not done within {RUN_TIMEOUT_S} s: {cal.values.tolist()}"
        time.sleep(1.0)
    assert len(cal) == 1 and cal["status"].iloc[0] == "finished", cal[["name", "status", "error"]].values.tolist()
    summary = cal["summary"].iloc[0]
    assert summary["preset"] == "tiny" and summary["device"] == "cpu" and summary["tokens_per_s"] > 0
    # the process exits just after recording its result; the page stops polling once it has
    _poll(at, lambda a: not any("Calibrating" in c.value for c in a.caption), 30, "the page kept polling")
    shown = at.dataframe[0].value
    assert shown["status"].tolist() == ["finished"] and shown["preset"].tolist() == ["tiny"]
    assert shown["tokens/s"].iloc[0] == pytest.approx(summary["tokens_per_s"])
    assert reg.list_runs(kind="train").empty  # a calibration is not a training run


def _recorded_run(name: str, status: str, summary: dict | None = None, steps: int = 3) -> Registry:
    """A training run as the trainer records it (registry rows only, no process)."""
    reg = Registry()
    reg.create_run(name, {"preset": "tiny", "resolved": {"max_steps": 10, "device": "cpu"}},
                   workspace.runs_dir() / name, kind="train", status="running")
    reg.set_pid(name, os.getpid())  # alive: the page polls it as a live run
    reg.log_metrics(name, rows=[{"step": s, "train_loss": 5.0 - s / 10, "tokens_per_s": 2000.0, "elapsed_s": s,
                                 "mem_bytes": 748_000_000.0} for s in range(1, steps + 1)])
    if status != "running":
        reg.set_status(name, status, summary=summary or {})
    return reg


def _figure(at: AppTest, index: int = 0) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_live_curve_keeps_the_users_zoom_across_updates():
    """Issue 11 item 11: each poll redraws the live chart with new points. plotly's uirevision stays the
    same for the run, so an in-place update keeps a zoom; and since Streamlit 1.67 remounts a plotly chart
    whose figure changed (its frontend key is a hash of the figure), "Follow live" off freezes the figure:
    the same element, unchanged across polls, while new points arrive and the metrics move on."""
    reg = _recorded_run("live", "running")
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["lab_run"] = "live"
    at.run()
    assert_clean(at)
    first, first_id = _figure(at), at.get("plotly_chart")[0].proto.id
    assert first["layout"].get("uirevision") == "run:live"
    assert first_id.endswith("lab_curve_live"), first_id
    reg.log_metrics("live", rows=[{"step": 4, "train_loss": 4.5}, {"step": 5, "train_loss": 4.4}])
    at.run()
    assert_clean(at)
    second = _figure(at)
    assert second["data"] != first["data"], "following live, the redraw carries the new points"
    assert second["layout"]["uirevision"] == first["layout"]["uirevision"]
    second_id = at.get("plotly_chart")[0].proto.id

    at.toggle(key="lab_follow_live").set_value(False).run()
    assert_clean(at)
    frozen, frozen_id = _figure(at), at.get("plotly_chart")[0].proto.id
    reg.log_metrics("live", rows=[{"step": 6, "train_loss": 4.3}, {"step": 7, "train_loss": 4.2}])
    for _ in range(2):  # two polls with new points: the chart holds still, the progress moves on
        at.run()
        assert_clean(at)
        assert at.get("plotly_chart")[0].proto.id == frozen_id == second_id
        assert _figure(at) == frozen
    assert at.get("progress")[0].proto.text == "step 7 of 10"
    at.toggle(key="lab_follow_live").set_value(True).run()
    assert _figure(at)["data"] != frozen["data"], "following again shows every point"
    assert _figure(at)["layout"]["uirevision"] == "run:live"


def test_finished_run_shows_short_memory_and_its_mfu_with_the_basis():
    """Issue 11 item 12: 'Memory 713.36 …' was cut off, and MFU showed '–' though the result had it."""
    basis = "measured fp32 matmul peak of this CPU (1024×1024 torch.mm), not a datasheet figure"
    _recorded_run("done", "finished", {"steps": 3, "device": "cpu", "mfu": 0.31, "mfu_basis": basis,
                                       "peak_memory_bytes": 748_010_000, "stopped_reason": "finished"})
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["lab_run"] = "done"
    at.run()
    assert_clean(at)
    shown = {m.label: m for m in at.metric}
    assert shown["Memory"].value == "713 MiB"
    assert "713.36 MiB" in shown["Memory"].proto.help and "RSS" in shown["Memory"].proto.help
    assert shown["MFU"].value == "31.0%"
    assert basis in shown["MFU"].proto.help


def test_a_windows_encoded_upload_is_read_and_its_encoding_shown():
    """Issue 11 item 5 on the lab's data source: a cp1252 file is read, and the page says so."""
    at = _page()
    at.radio(key="lab_source").set_value("Upload a file").run()
    text = "Le café était très bon, merci à l'équipe.\n" * 200
    at.file_uploader(key="lab_upload").set_value(("notes.txt", text.encode("cp1252"), "text/plain")).run()
    assert_clean(at)
    assert any("read as cp1252" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not at.button(key="lab_start").disabled


def test_tiny_preset_label_says_what_was_measured():
    """Issue 11 item 13: the tiny preset promised "learns in a minute on 2 CPU cores" while its default
    300 steps took about 230 s from the page. Its label now quotes the wall time recorded in
    engine/catalog/lab_presets.toml (with date, machine and load), which bench/lab_preset_time.py
    re-measures (``--check`` fails when the figure no longer holds)."""
    import re

    from engine.lab.presets import get_preset

    tiny = get_preset("tiny")
    assert tiny.cpu_run_s is not None and tiny.cpu_run_s > 0
    assert re.search(r"\d{4}-\d{2}-\d{2}", tiny.cpu_run_measured) and "load" in tiny.cpu_run_measured
    minutes = tiny.cpu_run_s / 60
    assert tiny.label == f"{tiny.name}: {tiny.max_steps} steps in {tiny.cpu_run_time} on 2 CPU cores"
    assert tiny.cpu_run_time == (f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {tiny.cpu_run_s:.0f} s")
    assert "minute" not in tiny.name.lower(), "the name makes no timing promise of its own"
    at = _page()
    assert tiny.label in at.selectbox(key="lab_preset").options
    assert not any("in a minute" in o for o in at.selectbox(key="lab_preset").options)
    assert any(tiny.cpu_run_time in i.value for i in at.info)
