"""The HTML report: one standalone file, plotly inlined, data escaped."""

from __future__ import annotations

from engine.datacheck.report_html import render_html, write_html
from engine.datacheck.runner import CheckInput, run_checks

from .conftest import write_csv


def test_standalone_and_escaped(tmp_path):
    rows = [[f"<script>alert({i % 2})</script> some words here", "a" if i % 2 else "b"] for i in range(40)]
    rows.append(list(rows[0]))
    path = write_csv(tmp_path / "x.csv", ["text", "label"], rows)
    report = run_checks(CheckInput(path=path))
    out = write_html(report, tmp_path / "r.html")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page
    assert "<script src=" not in page and "<link" not in page              # works offline: nothing fetched
    assert page.count("plotly.js v") <= 2                                   # the library once
    assert "duplicate_rows" in page and "How the score is computed" in page
    assert str(report.score) in page
    assert render_html(report.to_dict()) == render_html(report)
