"""The Sweeps page in a real browser against `streamlit run app.py`: a tiny study started from the page,
its trials counted live by the progress bar while the sweep runs, until it ends. See conftest.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.sweep_spaces import TINY_SPACE

if TYPE_CHECKING:
    from conftest import AppPage, StreamlitServer

pytestmark = pytest.mark.e2e

SWEEP_TIMEOUT_S = 300  # 2 trials of 4 tiny steps, plus a throughput probe: ~30 s idle, minutes on a busy machine
SPACE = TINY_SPACE


@pytest.fixture
def end_sweeps(streamlit_server: StreamlitServer) -> Iterator[None]:
    """The sweep process outlives the server (its own session): stop the ones this test started."""
    yield
    import os
    import signal

    from engine.lab import tune_jobs
    from engine.store import is_alive

    root = streamlit_server.home / "runs" / "sweeps"
    for study in root.iterdir() if root.is_dir() else []:
        pid_file = study / "sweep.pid"
        if pid_file.is_file():
            import json

            pid = json.loads(pid_file.read_text())["pid"]
            if is_alive(pid):
                tune_jobs.stop_sweep(study)
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def test_start_a_study_and_see_trials_appear_live(app: AppPage, end_sweeps: None) -> None:
    from playwright.sync_api import expect

    app.goto("tune")
    app.assert_no_exceptions()
    app.commit(app.number_input("Trials"), "2")
    app.commit(app.number_input("Steps per trial"), "4")
    area = app.page.get_by_test_id("stTextArea").locator("textarea")
    app.rerun_after(lambda: (area.fill(SPACE), area.press("Control+Enter")))
    app.commit(app.text_input("Study name"), "e2e")
    app.page.get_by_role("button", name="Start sweep").click()

    heading = app.page.get_by_role("heading", name=re.compile(r"^e2e: "))
    expect(heading.first, "the study's live view").to_be_visible(timeout=60_000)
    progress = app.page.get_by_test_id("stProgress")
    counts: list[tuple[int, str]] = []
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while True:
        title = heading.first.inner_text() if heading.count() else ""
        text = progress.first.inner_text() if progress.count() else ""
        found = re.search(r"(\d+) of 2 trials", text)
        if found and (not counts or counts[-1] != (int(found[1]), title)):
            counts.append((int(found[1]), title))
        if title.endswith("2 trials done"):
            break
        assert time.monotonic() < deadline, f"the sweep did not finish in {SWEEP_TIMEOUT_S} s: {counts}"
        app.page.wait_for_timeout(500)
    # live: while the sweep ran, the page showed its trial count rising
    assert any(title.endswith(": running") for _, title in counts), counts
    assert [c for c, _ in counts] == sorted(c for c, _ in counts) and counts[-1][0] == 2, counts
    app.wait_idle()
    expect(app.page.get_by_role("button", name="Train the best configuration fully")).to_be_visible()
    assert app.page.get_by_test_id("stDataFrame").count() >= 1
    app.assert_no_exceptions()
