"""Shared helpers for the data-check tests (the text helper's test_text_*.py may use them too)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.datacheck.runner import CheckInput, run_checks


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def check(path, **kw):
    """run_checks with every check healthy (no internal errors)."""
    report = run_checks(CheckInput(path=path, **kw))
    broken = [c for c in report.checks_run if c["status"] == "error"]
    assert not broken, broken
    return report


def by_id(report, cid: str):
    return [f for f in report.findings if f.id == cid]
