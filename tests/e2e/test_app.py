"""The dashboard in a real browser: every page deep-links and renders without an exception, and the
main inputs drive the numbers they should. See conftest.py for the harness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage

pytestmark = pytest.mark.e2e

# url_path -> what the page must show besides a title; "" is the home page (Overview).
PAGES = {
    "": (),
    "train": ("stMetric", "stPlotlyChart"),
    "memory": ("stMetric", "stPlotlyChart"),
    "serve": ("stMetric", "stPlotlyChart"),
    "scaling": ("stMetric", "stPlotlyChart"),
    "catalog": (),
}


def _expect():
    from playwright.sync_api import expect  # imported lazily: conftest skips these tests without Playwright

    return expect


@pytest.mark.parametrize("path", list(PAGES), ids=[p or "overview" for p in PAGES])
def test_page_deep_link_renders(app: AppPage, path: str) -> None:
    app.goto(path)
    app.assert_no_exceptions()
    expect = _expect()
    title = app.page.locator('[data-testid="stMain"] h1')
    expect(title.first, f"a title (h1) on /{path}").to_be_visible()
    assert title.first.inner_text().strip(), f"the h1 on /{path} is empty"
    for testid in PAGES[path]:
        found = app.page.get_by_test_id(testid)
        assert found.count() >= 1, f"no [data-testid={testid}] on /{path}"
        expect(found.first).to_be_visible()


@pytest.mark.parametrize(("path", "field", "metric", "values"), [
    ("train", "Number of GPUs", "Wall clock", ("4096", "2048")),
    ("serve", "Prompt tokens", "Prefill latency", ("8192", "1024")),
], ids=["train-gpus-move-wall-clock", "serve-prompt-moves-prefill"])
def test_input_moves_its_metric(app: AppPage, path: str, field: str, metric: str, values: tuple[str, str]) -> None:
    app.goto(path)
    before = app.metric_value(metric)
    number = app.number_input(field)
    assert number.count() == 1, f"no number input {field!r}; number inputs: {app.labels('stNumberInput')}"
    new = values[0] if number.input_value() != values[0] else values[1]
    app.commit(number, new)
    app.assert_no_exceptions()
    after = app.metric_value(metric)
    assert after != before, f"{metric} stayed {before!r} after {field} -> {new}"
    assert app.page.get_by_test_id("stPlotlyChart").count() >= 1, "the plotly chart disappeared"


def test_train_invalid_tokens_shows_error(app: AppPage) -> None:
    app.goto("train")
    tokens = app.text_input("Training tokens")
    assert tokens.count() == 1, f"no text input 'Training tokens'; text inputs: {app.labels('stTextInput')}"
    app.commit(tokens, "abc")
    errors = app.page.get_by_test_id("stAlertContentError")
    _expect()(errors.filter(has_text="tokens").first, "an error alert mentioning tokens").to_be_visible()
    app.assert_no_exceptions(expected_errors=("tokens",))


def test_train_download_json_matches_the_page(app: AppPage) -> None:
    """The downloaded estimate is the one on screen: same cost, every contract key, valid JSON."""
    import json

    app.goto("train")
    shown_cost = app.metric_value("Cost")
    with app.page.expect_download(timeout=15_000) as info:
        app.page.get_by_role("button", name="Download estimate (JSON)").click()
    download = info.value
    assert download.suggested_filename == "training-estimate.json"
    data = json.loads(open(download.path(), encoding="utf-8").read())
    for key in ("params", "tokens", "flops_total", "gpu_hours", "wall_clock_hours", "cost_usd", "energy_kwh",
                "co2_kg", "mfu"):
        assert key in data, f"downloaded estimate lacks {key}"
    assert shown_cost == f"${data['cost_usd'] / 1e6:,.2f}M", (shown_cost, data["cost_usd"])
    app.assert_no_exceptions()
