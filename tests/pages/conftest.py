"""AppTest helpers: run a page script (standalone or through app.py) and read what it shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def run_page(path: str, timeout: float = 60) -> AppTest:
    """The page at ``path`` (relative to the repository) after its first run, which must be clean."""
    at = AppTest.from_file(str(ROOT / path), default_timeout=timeout)
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest, errors_allowed: bool = False) -> None:
    assert not at.exception, [e.value for e in at.exception]
    if not errors_allowed:
        assert not at.error, [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def page():
    return run_page


@pytest.fixture
def end_children() -> Iterator[None]:
    """Training, sweep and calibration processes a test started (our children, by pid) never outlive it.
    Only those: children that were there before the test (in a whole-suite run, the e2e session's
    Streamlit server and Playwright's driver and browser) are left alone; ending them killed the driver
    under the e2e fixtures and left "Connection closed while reading from the driver" after the suite's
    summary (issue 11 item 19). Test modules that start processes use it with ``autouse``."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    children = [p for p in me.children(recursive=True) if p.pid not in before]
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=10)
