"""The currency setting in a real browser (issue 11 item 10): chosen once in the sidebar, it follows
the user to another page through the app's own navigation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage

pytestmark = pytest.mark.e2e


def test_currency_follows_the_user_across_pages(app: AppPage) -> None:
    from playwright.sync_api import expect

    app.goto("train")
    assert app.metric_value("Cost").startswith("$")
    select = app.page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Currency")
    expect(select, "the currency setting in the sidebar").to_have_count(1)
    select.click()
    app.rerun_after(lambda: app.page.get_by_role("option").filter(has_text="CNY").click())
    app.assert_no_exceptions()
    assert app.metric_value("Cost").startswith("¥")
    expect(app.page.get_by_test_id("stSidebar").get_by_test_id("stNumberInput").first).to_be_visible()  # the rate
    # to the Serving page through the sidebar's navigation: same session, same setting
    app.rerun_after(lambda: app.page.get_by_test_id("stSidebarNav").get_by_role("link", name="Serving").click())
    app.assert_no_exceptions()
    expect(app.metric("Cost / M output tokens")).to_have_count(1)
    assert app.metric_value("Cost / M output tokens").startswith("¥")
