"""The currency setting (issue 11 item 10): one sidebar setting, drawn by app.py, that every page's
money figures, price inputs, charts and tables honour; USD by default."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.estimate.training import TrainingInput, estimate_training
from engine.money import format_money, get_currency
from tests.pages.conftest import ROOT, assert_clean, metrics, run_page


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert_clean(at)
    return at


def _go(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert_clean(at)
    return at


def test_usd_by_default_and_the_setting_is_in_the_sidebar():
    at = _app()
    assert at.sidebar.selectbox(key="currency-code").value == "USD"
    assert not [n for n in at.sidebar.number_input if n.key.startswith("currency-rate")]  # no rate for USD
    # the Overview leads with the plan since issue 18: its fine-tuning and serving figures are money
    assert metrics(at)["Serving a month (API)"].startswith("$")


def test_every_page_honours_the_currency_and_its_rate():
    at = _app()
    at.sidebar.selectbox(key="currency-code").set_value("CNY").run()
    assert_clean(at)
    rate = at.sidebar.number_input(key="currency-rate-CNY")
    assert rate.value == pytest.approx(7.1287)
    home = metrics(at)
    assert home["Serving a month (API)"].startswith("¥")
    assert next(v for k, v in home.items() if k.startswith("Training plan")).startswith("¥")

    # Training: the headline cost, the price input in yuan, the chart axis and the table
    _go(at, "views/train.py")
    price = at.number_input(key="price-h100-sxm-CNY-7.1287")
    assert price.label == "Price per GPU-hour (CNY)" and price.value == pytest.approx(2.99 * 7.1287, abs=1e-4)
    cost = metrics(at)["Cost"]
    expected = estimate_training(TrainingInput(model="llama-3-8b", tokens=15e12, gpu="h100-sxm", gpus=256,
                                               price_usd_per_hour=round(2.99 * 7.1287, 4) / 7.1287))
    assert cost == format_money(expected.cost_usd, get_currency("CNY")) and cost.startswith("¥")
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "Cost (CNY)" in [a["text"] for a in chart["layout"]["annotations"]]
    assert chart["data"][0]["hovertemplate"].startswith("%{x}: ¥")
    table = at.dataframe[0].value
    assert {"cost_usd", "cost_cny", "price_usd_per_hour", "price_cny_per_hour"} <= set(table.columns)
    row = table.iloc[0]
    assert row["cost_cny"] == pytest.approx(row["cost_usd"] * 7.1287)

    # a price typed in yuan is a price in yuan: ¥14.2574 per GPU-hour is $2
    price.set_value(14.2574).run()
    assert_clean(at)
    at_two = estimate_training(TrainingInput(model="llama-3-8b", tokens=15e12, gpu="h100-sxm", gpus=256,
                                             price_usd_per_hour=2.0))
    assert metrics(at)["Cost"] == format_money(at_two.cost_usd, get_currency("CNY"))

    # an edited rate, with its date, moves every figure
    at.sidebar.number_input(key="currency-rate-CNY").set_value(7.0).run()
    assert_clean(at)
    assert at.sidebar.date_input(key="currency-date-CNY").value is not None
    assert any("your rate" in c.value for c in at.sidebar.caption)
    # the price box is new at the new rate: the catalog's $2.99 again, now × 7
    assert at.number_input(key="price-h100-sxm-CNY-7").value == pytest.approx(2.99 * 7, abs=1e-4)

    _go(at, "views/serve.py")
    m = metrics(at)
    assert m["Cost / M output tokens"].startswith("¥") and m["Cost / M input tokens"].startswith("¥")
    assert at.number_input(key="serve-price-h100-sxm-CNY-7").label == "Price per GPU-hour (CNY)"

    _go(at, "views/scaling.py")
    assert metrics(at)["Cost"].startswith("¥")
    assert at.text_input(key="budget-CNY").label == "Budget (CNY)"

    _go(at, "views/catalog.py")
    gpus = at.dataframe[0].value
    h800 = gpus[gpus["id"] == "h800"].iloc[0]
    assert h800["price_cny_per_hour"] == pytest.approx(14.0) and h800["cuda"] and h800["platform"] == "CUDA"
    assert not gpus[gpus["id"] == "ascend-910b"].iloc[0]["cuda"]

    # back to USD: dollars again everywhere
    at.sidebar.selectbox(key="currency-code").set_value("USD").run()
    _go(at, "views/train.py")
    assert metrics(at)["Cost"].startswith("$")


def test_a_page_run_alone_reads_the_setting_from_session_state():
    at = AppTest.from_file(str(ROOT / "views/serve.py"), default_timeout=60)
    at.session_state["currency-code"] = "EUR"
    at.session_state["currency-rate-EUR"] = 0.5
    at.run()
    assert_clean(at)
    usd = run_page("views/serve.py")
    eur, dollars = metrics(at)["Cost / M output tokens"], metrics(usd)["Cost / M output tokens"]
    assert eur.startswith("€") and dollars.startswith("$")
    # the same estimate at half the figure: the typed price is the catalog price converted, so equal in USD
    assert float(eur.lstrip("€")) == pytest.approx(float(dollars.lstrip("$")) / 2, rel=0.02)
