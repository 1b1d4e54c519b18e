"""The fine-tuning page in a real browser: it loads, shows no exception, and its table, metrics and charts
are visible. See conftest.py for the harness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage

pytestmark = pytest.mark.e2e


def test_finetune_page_loads_with_table_and_charts(app: AppPage) -> None:
    from playwright.sync_api import expect

    app.goto("finetune")
    app.assert_no_exceptions()
    assert app.page.get_by_test_id("stException").count() == 0
    expect(app.page.locator('[data-testid="stMain"] h1').first).to_have_text("Fine-tuning")
    table = app.page.get_by_test_id("stDataFrame")
    assert table.count() >= 1, "no table on /finetune"
    expect(table.first).to_be_visible()
    # the memory breakdown of this run, memory by GPU, cost vs time
    assert app.page.get_by_test_id("stPlotlyChart").count() == 3
    assert app.metric_value("Fits") == "yes"
    assert table.count() == 2  # by GPU type; the longest sequence per GPU × method × stack
    hf = int(app.metric_value("Longest sequence that fits").replace(",", ""))
    _shot(app, "finetune-hf.png")
    box = app.page.get_by_test_id("stSelectbox").filter(
        has=app.page.get_by_test_id("stWidgetLabel").get_by_text("Software stack"))
    box.click()
    app.rerun_after(lambda: app.page.get_by_role("option", name="Unsloth", exact=True).click())
    app.assert_no_exceptions()
    assert int(app.metric_value("Longest sequence that fits").replace(",", "")) > 3 * hf
    expect(app.page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    _shot(app, "finetune-unsloth.png")


def _shot(app: AppPage, name: str) -> None:
    """A full-page screenshot for a person to look at, where E2E_SCREENSHOTS names a folder."""
    import os

    folder = os.environ.get("E2E_SCREENSHOTS")
    if folder:
        size = app.page.viewport_size
        app.page.set_viewport_size({"width": 1400, "height": 4200})  # Streamlit scrolls inside its own container
        app.page.wait_for_timeout(500)
        app.page.screenshot(path=os.path.join(folder, name), full_page=True)
        if size:
            app.page.set_viewport_size(size)
