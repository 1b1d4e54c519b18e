"""Self-host or API on the Serving page in a real browser (issue 18): DeepSeek's API against self-hosting
at two loads, and the comparison table downloaded. See conftest.py for the harness."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage

pytestmark = pytest.mark.e2e


def test_compare_deepseek_api_with_self_hosting_and_download_the_table(app: AppPage) -> None:
    from playwright.sync_api import expect

    app.goto("serve")
    app.assert_no_exceptions()
    expect(app.page.get_by_text("Self-host or API", exact=True)).to_be_visible()
    # 10 requests/s of 1000 + 250 tokens: one H100 ($2,182.70 a month) against DeepSeek's ¥72,270 ($10,137.89)
    assert app.metric_value("Cheaper at your load") == "self-hosting"
    with app.page.expect_download(timeout=15_000) as info:
        app.page.locator(".st-key-dl-csv-breakeven button").click()
    download = info.value
    assert download.suggested_filename == "self-host-vs-api.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    by_option = {r["option"]: r for r in rows}
    assert "deepseek/deepseek-chat" in by_option and rows[0]["option"].startswith("self-host")
    assert float(by_option["deepseek/deepseek-chat"]["monthly_usd"]) == pytest.approx(72_270 / 7.1287, rel=1e-6)
    assert float(rows[0]["monthly_usd"]) == pytest.approx(2.99 * 730, rel=1e-9)
    assert by_option["deepseek/deepseek-chat"]["cheaper_at_your_load"] == "self-host"
    # at 1 request/s the GPU sits mostly idle and an API is cheaper
    app.commit(app.number_input("Requests per second"), "1")
    app.assert_no_exceptions()
    assert app.metric_value("Cheaper at your load") != "self-hosting"
