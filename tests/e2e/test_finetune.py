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
    assert app.page.get_by_test_id("stPlotlyChart").count() == 2
    assert app.metric_value("Fits") == "yes"
