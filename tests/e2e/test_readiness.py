"""Readiness in a real browser: fill the profile, read the verdicts, save and switch scenarios, download
the HTML report and open it offline; and five sessions at once, each seeing only its own inputs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import AppPage, wait_idle

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e


def _expect():
    from playwright.sync_api import expect

    return expect


FIRST_LOAD_MS = 120_000  # the page's first load draws ~40 lazy elements: slow on a busy 2-core machine


def _open(app: AppPage) -> None:
    app.page.goto(f"{app.base_url}/readiness", wait_until="domcontentloaded")
    wait_idle(app.page, FIRST_LOAD_MS)


def _pick(app: AppPage, label: str, option: str) -> None:
    box = app.page.get_by_test_id("stSelectbox").filter(has=app.page.get_by_test_id("stWidgetLabel").get_by_text(label))
    box.click()
    app.rerun_after(lambda: app.page.get_by_role("option", name=option, exact=True).click())


def _click(app: AppPage, name: str) -> None:
    app.rerun_after(lambda: app.page.get_by_role("button", name=name, exact=True).click())


def _missing_artifacts(home, monkeypatch) -> tuple[int, bool]:
    """Areas the server's workspace has nothing for yet: the latency area always (no serving measurement
    in these tests), data and model unless an earlier e2e test of the session checked a file or trained."""
    from engine.artifacts import latest_data_check, latest_training_run

    monkeypatch.setenv("PREFLIGHT_HOME", str(home))
    no_data = latest_data_check() is None
    return 1 + no_data + (latest_training_run() is None), no_data


def test_profile_verdicts_scenarios_and_report(app: AppPage, streamlit_server, tmp_path, monkeypatch) -> None:
    expect = _expect()
    _open(app)
    app.assert_no_exceptions()
    app.commit(app.text_input("Company (shown on the report)"), "Acme <b>AI</b>")
    app.commit(app.number_input("Daily active users"), "20000")
    app.assert_no_exceptions()
    assert app.metric_value("Revenue per month") == "$400.0K"  # 20,000 users × $20
    expect(app.page.get_by_text("no data yet").first).to_be_visible()  # the verdict badges
    missing, no_data = _missing_artifacts(streamlit_server.home, monkeypatch)
    assert app.page.get_by_test_id("stMain").inner_text().count("no data yet") == missing  # latency (+ data, model)
    if no_data:
        expect(app.page.get_by_text("No dataset checked yet", exact=False).first).to_be_visible()

    assert app.text_input("Scenario name").input_value() == "base"  # the default name
    _click(app, "Save")
    app.commit(app.number_input("Daily active users"), "200000")
    app.commit(app.text_input("Scenario name"), "bull")
    _click(app, "Copy")
    app.assert_no_exceptions()
    assert app.metric_value("Revenue per month") == "$4.00M"
    _pick(app, "Scenario", "base")
    assert app.number_input("Daily active users").input_value() == "20000"
    assert app.metric_value("Revenue per month") == "$400.0K"
    expect(app.page.get_by_text("Compare scenarios")).to_be_visible()

    with app.page.expect_download(timeout=60_000) as info:
        app.page.get_by_role("button", name="Report (HTML, prints to PDF)", exact=True).click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    text = path.read_text()
    assert "Acme &lt;b&gt;AI&lt;/b&gt;" in text and "<b>AI</b>" not in text

    # Offline: every request that is not the file itself is refused; the two charts still draw.
    context = app.page.context
    offline = context.new_page()
    offline.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
    offline.goto(path.as_uri())
    expect(offline.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
    assert offline.locator(".js-plotly-plot").count() == 2
    expect(offline.get_by_text("no data yet").first).to_be_visible()
    offline.close()


def test_five_sessions_at_once_each_see_only_their_own_inputs(browser: Browser, streamlit_server) -> None:
    """Five browser contexts (five Streamlit sessions) type different users at the same time; each
    page ends up showing its own input and the revenue that follows from it, never another's. Waits
    on the figures themselves rather than on the whole page settling (charts draw slowly under load)."""
    expect = _expect()
    users = [1000, 2000, 3000, 4000, 6000]
    contexts, apps = [], []
    try:
        for _ in users:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(FIRST_LOAD_MS)
            contexts.append(context)
            app = AppPage(page=context.new_page(), base_url=streamlit_server.url)
            app.page.on("pageerror", lambda err, a=app: a.page_errors.append(err.message))
            apps.append(app)
        for app in apps:  # all five sessions open at once
            app.page.goto(f"{app.base_url}/readiness", wait_until="domcontentloaded")
        for app in apps:
            revenue = app.metric("Revenue per month").get_by_test_id("stMetricValue")
            expect(revenue).to_have_text("$100.0K", timeout=FIRST_LOAD_MS)
        for app, n in zip(apps, users):  # type into all five before waiting for any
            field = app.number_input("Daily active users")
            field.fill(str(n))
            field.press("Enter")
        for app, n in zip(apps, users):
            value = app.metric("Revenue per month").get_by_test_id("stMetricValue")
            # subscription $20 × its own users
            expect(value).to_have_text(f"${n * 20 / 1000:,.1f}K", timeout=FIRST_LOAD_MS)
            assert app.number_input("Daily active users").input_value() == str(n)
        for app, n in zip(reversed(apps), reversed(users)):  # a second round, another field, reverse order
            field = app.text_input("Company (shown on the report)")
            field.fill(f"company-{n}")
            field.press("Enter")
        for app, n in zip(apps, users):
            company = app.text_input("Company (shown on the report)")
            expect(company).to_have_value(f"company-{n}", timeout=FIRST_LOAD_MS)
            revenue = app.metric("Revenue per month").get_by_test_id("stMetricValue")
            expect(revenue).to_have_text(f"${n * 20 / 1000:,.1f}K", timeout=FIRST_LOAD_MS)
            assert not app.page_errors and app.page.get_by_test_id("stException").count() == 0
    finally:
        for context in contexts:
            context.close()
