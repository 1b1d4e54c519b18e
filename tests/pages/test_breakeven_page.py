"""The Serving page's cost at the load and its "Self-host or API" section (issue 18)."""

from __future__ import annotations

from engine.money import format_money
from tests.pages.conftest import assert_clean, metrics, run_page


def test_serving_page_shows_cost_at_load_beside_full_batch():
    from engine.estimate.serving import ServeInput, estimate_serving

    at = run_page("views/serve.py")
    est = estimate_serving(ServeInput(model="llama-3-8b", gpu="h100-sxm", prompt_tokens=1000, output_tokens=250,
                                      requests_per_s=10.0, price_usd_per_hour=2.99))
    m = metrics(at)
    assert m["Monthly cost at this load"] == format_money(est.monthly_cost_usd)
    assert m["Cost / M tokens at this load"] == format_money(est.cost_per_million_tokens_at_load_usd)
    assert any("**Full batch**" in c.value and f"{est.utilization:.0%} used" in c.value for c in at.caption)


def test_breakeven_section_compares_deepseek_with_self_hosting():
    at = run_page("views/serve.py")
    assert "deepseek/deepseek-chat" in at.multiselect(key="be-apis").value
    table = [d.value for d in at.dataframe if "option" in d.value.columns][0]
    assert list(table["option"])[1:3] == ["deepseek/deepseek-chat", "together/llama-3.1-8b-instruct-turbo"]
    assert metrics(at)["Cheaper at your load"] in ("self-hosting", "deepseek/deepseek-chat",
                                                   "together/llama-3.1-8b-instruct-turbo")
    assert len(at.get("plotly_chart")) == 3
    # the DeepSeek offer serves DeepSeek-V3: one click self-hosts that model instead
    button = next(b for b in at.button if b.key == "be-same-deepseek/deepseek-chat")
    button.click().run()
    assert at.selectbox(key="serve-model").value == "deepseek-v3"


def test_breakeven_section_takes_a_negotiated_price_and_names_a_bad_row():
    at = run_page("views/serve.py")
    at.session_state["be-custom-rows"] = [{"id": "acme/our-deal", "currency": "CNY", "input_per_million": 1.0,
                                           "output_per_million": 2.0}]
    at.run()
    assert_clean(at)
    assert "acme/our-deal" in at.multiselect(key="be-apis").value
    at.session_state["be-custom-rows"] = [{"id": "acme/our-deal", "currency": "CNY", "input_per_million": 1.0}]
    at.run()
    assert not at.exception
    assert at.error and "your price, row 1 ('acme/our-deal'): no output price" in at.error[0].value


def test_breakeven_section_without_an_offer_says_what_to_do():
    at = run_page("views/serve.py")
    at.multiselect(key="be-apis").set_value([]).run()
    assert_clean(at)
    assert any("Pick at least one API offer" in i.value for i in at.info)
