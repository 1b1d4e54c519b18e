"""AppTest helpers: run a page script (standalone or through app.py) and read what it shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def run_page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
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
