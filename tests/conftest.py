"""Suite-wide: every test gets its own Preflight workspace, so nothing reads or writes ./.preflight.

A user's fresh workspace gets the shipped demo run (engine/store.py); the suite's workspaces start empty
(``PREFLIGHT_DEMO_RUN=0``, set for this process and so for every worker and app server it starts), because
its tests are about the user's own runs and artifacts. Tests of a newcomer's first start ask for the demo
with the ``demo_home`` fixture (tests/test_demo_run.py)."""

from __future__ import annotations

import os

import pytest

os.environ["PREFLIGHT_DEMO_RUN"] = "0"


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path_factory.mktemp("preflight-home")))


@pytest.fixture
def demo_home(tmp_path, monkeypatch):
    """A fresh workspace as a newcomer gets it: the shipped demo run is registered when it is first opened."""
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.setenv("PREFLIGHT_DEMO_RUN", "1")
    return tmp_path / "fresh-home"
