"""Suite-wide: every test gets its own Preflight workspace, so nothing reads or writes ./.preflight."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path_factory.mktemp("preflight-home")))
