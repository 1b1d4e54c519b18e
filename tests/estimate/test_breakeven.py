"""API offers, cost at the load, self-host vs API break-even: hand-worked cases (yuan and dollars),
properties of the step function, custom price files and the CLI's one-line refusals."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from engine import money
from tests.test_cli import cli  # the one in-process CLI runner of the tests
from engine.errors import ValidationError
from engine.estimate.apis import (SECONDS_PER_MONTH, api_monthly_usd, catalog_offers, get_offer, load_api_file,
                                  offer_from_mapping, open_model_spec)
from engine.estimate.breakeven import SELF_HOST, BreakevenInput, breakeven_load, estimate_breakeven
from engine.estimate.serving import ServeInput, at_load, estimate_serving

CNY = money.get_currency("CNY")




# ---- the catalog -------------------------------------------------------------------------------------
def test_catalog_has_the_vendors_the_founders_ask_about():
    offers = catalog_offers()
    assert len(offers) >= 20
    providers = {o.provider for o in offers.values()}
    for name in ("DeepSeek", "Alibaba Model Studio", "Zhipu", "Moonshot", "ByteDance Doubao", "SiliconFlow", "OpenAI",
                 "Anthropic", "Google", "Together AI", "Fireworks AI", "Groq", "DeepInfra"):
        assert name in providers, name
    china = {"DeepSeek", "Alibaba Model Studio", "Zhipu", "Moonshot", "ByteDance Doubao", "SiliconFlow"}
    for o in offers.values():
        assert o.source and len(o.date) == 10 and o.context and o.id == f"{o.id.split('/')[0]}/{o.id.split('/', 1)[1]}"
        assert o.currency == ("CNY" if o.provider in china else "USD"), o.id
        assert o.input_per_million > 0 and o.output_per_million > 0


def test_open_model_lookup_says_when_the_catalog_lacks_the_model():
    spec, why = open_model_spec(get_offer("deepseek/deepseek-chat"))
    assert spec.id == "deepseek-v3" and "deepseek-v3" in why
    spec, why = open_model_spec(get_offer("openai/gpt-4o-mini"))
    assert spec is None and "proprietary" in why
    qwen = get_offer("alibaba/qwen2.5-72b-instruct")
    spec, why = open_model_spec(qwen)
    from engine.estimate.models import models

    if "qwen2.5-72b" in models():  # once the issue-16 models land
        assert spec.id == "qwen2.5-72b"
    else:
        assert spec is None and "not in the model catalog yet" in why


def test_unknown_offer_names_close_ones():
    with pytest.raises(ValidationError, match="did you mean deepseek/deepseek-chat"):
        get_offer("deepseek/deepseek-chta")


# ---- hand-worked: API monthly cost -------------------------------------------------------------------
def test_api_month_in_dollars_by_hand():
    # gpt-4o-mini, $0.15 in / $0.60 out: 1000 + 250 tokens cost (150 + 150) / 1e6 = $0.0003 a request;
    # 10 requests/s for 2,628,000 s is 26,280,000 requests: $7,884 a month.
    offer = get_offer("openai/gpt-4o-mini")
    assert SECONDS_PER_MONTH == 2_628_000
    assert api_monthly_usd(offer, 10, 1000, 250) == pytest.approx(7884.0, rel=1e-12)
    # half the prompt from the cache at $0.075: 500 × 0.15 + 500 × 0.075 = 112.5, + 150 = 262.5 per 1e6
    assert api_monthly_usd(offer, 10, 1000, 250, cached_fraction=0.5) == pytest.approx(26_280_000 * 262.5e-6)


def test_api_month_in_yuan_by_hand():
    # DeepSeek, ¥2 in / ¥3 out: (2000 + 750) / 1e6 = ¥0.00275 a request; 26,280,000 requests = ¥72,270 a
    # month, at the catalog's 7.1287 yuan per dollar $10,137.89.
    offer = get_offer("deepseek/deepseek-chat")
    assert CNY.per_usd == 7.1287
    assert api_monthly_usd(offer, 10, 1000, 250) == pytest.approx(72_270 / 7.1287, rel=1e-12)
    # a founder's own rate: at 7.0 the same month is $10,324.29
    assert api_monthly_usd(offer, 10, 1000, 250, rate=money.get_currency("CNY", 7.0)) == pytest.approx(72_270 / 7.0)


# ---- hand-worked: cost at the load -------------------------------------------------------------------
def test_cost_at_load_by_hand():
    # 2 GPUs at $2.50: 2 × 2.5 × 730 = $3,650 a month. 5 requests/s on 2 replicas of 10 requests/s: 25%
    # used. 5 × 1250 tokens × 2,628,000 s = 16,425 M tokens a month: $3,650 / 16,425 = $0.2222 per M.
    out = at_load(gpus_needed=2, price_usd_per_hour=2.5, replicas=2, replica_rps=10, requests_per_s=5,
                  tokens_per_request=1250)
    assert out["monthly_cost_usd"] == pytest.approx(3650.0)
    assert out["utilization"] == pytest.approx(0.25)
    assert out["cost_per_million_tokens_at_load_usd"] == pytest.approx(3650 / 16_425)


def test_serving_estimate_carries_cost_at_load():
    est = estimate_serving(ServeInput(model="llama-3-8b", gpu="h100-sxm", prompt_tokens=1000, output_tokens=250,
                                      requests_per_s=4.0, price_usd_per_hour=2.0))
    assert est.replicas == 1 and est.monthly_cost_usd == pytest.approx(1 * 2.0 * 730)
    assert est.utilization == pytest.approx(4.0 / est.requests_per_s_per_replica)
    assert est.cost_per_million_tokens_at_load_usd == pytest.approx(1460 / (4 * 1250 * 2.628))
    # at a light load each token costs more than the full-batch figures say
    assert est.cost_per_million_tokens_at_load_usd > est.cost_per_million_output_tokens_usd


# ---- hand-worked: break-even ---------------------------------------------------------------------------
def test_breakeven_by_hand_dollars_and_yuan():
    # A replica of 1 GPU at $2 is $1,460 a month. gpt-4o-mini costs $0.0003 a request: a = 2,628,000 ×
    # 0.0003 = $788.40 a month per request/s, so self-hosting pays from 1460 / 788.4 = 1.8519 requests/s,
    # if one replica sustains that much.
    assert breakeven_load(1460.0, 788.4, replica_rps=20.0) == pytest.approx(1.851852, rel=1e-6)
    assert breakeven_load(1460.0, 788.4, replica_rps=1.5) is None  # a full replica costs more than the API
    # DeepSeek at ¥0.00275 a request: a = 2,628,000 × 0.00275 / 7.1287 = $1,013.79 per request/s -> 1.4401
    a = 2_628_000 * 0.00275 / 7.1287
    assert breakeven_load(1460.0, a, replica_rps=20.0) == pytest.approx(1460 * 7.1287 / 7227.0, rel=1e-9)


def test_breakeven_through_the_estimator():
    r = estimate_breakeven(BreakevenInput(model="llama-3-8b", gpu="h100-sxm", prompt_tokens=1000, output_tokens=250,
                                          requests_per_s=10, price_usd_per_hour=2.0, p95_target_s=30,
                                          apis=("openai/gpt-4o-mini", "deepseek/deepseek-chat"), monthly_growth=0.1))
    assert r["gpus_per_replica"] == 1 and r["replica_monthly_usd"] == pytest.approx(1460.0)
    assert r["self_host_monthly_usd"] == pytest.approx(r["replicas"] * 1460.0)
    mini, ds = r["api"]
    assert mini["monthly_usd"] == pytest.approx(7884.0) and ds["monthly_usd"] == pytest.approx(72_270 / 7.1287)
    assert mini["breakeven_requests_per_s"] == pytest.approx(1460 / 788.4)
    assert r["cheaper"] == SELF_HOST  # 1 H100 at $1,460 against $7,884 and $10,138
    assert r["month_12"]["requests_per_s"] == pytest.approx(10 * 1.1 ** 12)
    assert r["latency"]["meets_target"] is (r["latency"]["p95_estimate_s"] <= 30)
    steps = [p for p in r["curve"] if p["requests_per_s"] <= r["requests_per_s_per_replica"]]
    assert {p["self_host_monthly_usd"] for p in steps} == {1460.0}  # one replica up to its capacity


@settings(max_examples=200, deadline=None)
@given(c=st.floats(1, 1e6), a=st.floats(1e-3, 1e6), r1=st.floats(1e-3, 1e3))
def test_breakeven_is_the_smallest_load_where_self_hosting_is_no_dearer(c, a, r1):
    load = breakeven_load(c, a, r1)

    def self_host(r):
        return max(1, math.ceil(r / r1 - 1e-9)) * c

    if load is None:  # the API wins at every load: check the worst case for it, each replica full
        assert c > a * r1 * (1 - 1e-9)
        return
    assert self_host(load) <= a * load * (1 + 1e-9)
    for frac in (0.5, 0.9, 0.999):
        assert self_host(load * frac) > a * load * frac * (1 - 1e-9)


# ---- custom prices --------------------------------------------------------------------------------------
def test_custom_price_file_toml_json_csv(tmp_path):
    toml = tmp_path / "ours.toml"
    toml.write_text('[[offer]]\nid = "deepseek/deepseek-chat"\ncurrency = "CNY"\ninput_per_million = 1\n'
                    'output_per_million = 2\n', encoding="utf-8")
    (ours,) = load_api_file(toml)
    assert ours.custom and ours.input_per_million == 1 and "user" in ours.source
    assert get_offer("deepseek/deepseek-chat", [ours]).output_per_million == 2  # replaces the list price
    js = tmp_path / "ours.json"
    js.write_text(json.dumps([{"id": "acme/our-llm", "input_per_million": 0.1, "output_per_million": 0.2}]))
    assert load_api_file(js)[0].currency == "USD"
    csv_file = tmp_path / "ours.csv"
    csv_file.write_text("id,currency,input_per_million,output_per_million\nacme/x,EUR,1,2\n", encoding="utf-8")
    assert load_api_file(csv_file)[0].currency == "EUR"


@pytest.mark.parametrize("row, message", [
    ({"id": "acme/x", "input_per_million": 1}, "row 2 ('acme/x'): no output price"),
    ({"id": "acme/x", "output_per_million": 1}, "no input price"),
    ({"id": "acme/x", "input_per_million": -1, "output_per_million": 1}, "between 0 and"),
    ({"id": "acmex", "input_per_million": 1, "output_per_million": 1}, "provider/model"),
    ({"id": "acme/x", "currency": "GBP", "input_per_million": 1, "output_per_million": 1}, "currency 'GBP'"),
    ({"id": "acme/x", "input_per_million": "lots", "output_per_million": 1}, "must be a number"),
    ({"id": "acme/x", "input_per_million": 1, "output_per_million": 1, "colour": "red"}, "unknown field 'colour'"),
])
def test_a_bad_row_is_named(tmp_path, row, message):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps([{"id": "good/one", "input_per_million": 1, "output_per_million": 1}, row]))
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        load_api_file(path)
    assert "prices.json" in str(exc.value) and "\n" not in str(exc.value)


def test_offer_row_without_a_price_is_refused():
    with pytest.raises(ValidationError, match="no output price"):
        offer_from_mapping({"id": "a/b", "input_per_million": 1, "output_per_million": None})


# ---- the CLI ------------------------------------------------------------------------------------------------
def test_cli_apis_lists_offers(capsys):
    code, out, _ = cli(capsys, "apis", "--json")
    assert code == 0
    offers = json.loads(out)["offers"]
    assert len(offers) >= 20
    keys = {"id", "provider", "model", "input_per_million", "output_per_million", "currency", "source", "date"}
    assert all(keys <= o.keys() for o in offers)


def test_cli_breakeven_json(capsys):
    code, out, err = cli(capsys, "estimate", "breakeven", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--price", "2",
                         "--prompt-tokens", "1000", "--output-tokens", "250", "--requests-per-s", "10",
                         "--api", "openai/gpt-4o-mini", "--api", "deepseek/deepseek-chat", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["self_host_monthly_usd"] == pytest.approx(1460.0) and r["cheaper"] == "self-host"
    assert [a["id"] for a in r["api"]] == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]
    assert {"id", "monthly_usd", "breakeven_requests_per_s"} <= r["api"][0].keys() and "curve" not in r


@pytest.mark.parametrize("extra, message", [
    (("--api", "deepseek/deepseek-chta"), "did you mean deepseek/deepseek-chat"),
    (("--api", "openai/gpt-4o-mini", "--requests-per-s", "0"), "requests-per-s must be > 0"),
    (("--api", "openai/gpt-4o-mini", "--requests-per-s", "-2"), "requests-per-s must be > 0"),
])
def test_cli_breakeven_bad_input(capsys, extra, message):
    argv = ["estimate", "breakeven", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "100",
            "--output-tokens", "10", "--requests-per-s", "1", *extra]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_price_file(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[offer]]\nid = "acme/x"\ninput_per_million = 1\n', encoding="utf-8")
    code, _, err = cli(capsys, "apis", "--api-file", str(path))
    assert code == 2 and "bad.toml, row 1 ('acme/x'): no output price" in err


def test_the_terminal_lines_follow_the_currency(capsys):
    """Without --json the comparison prints in the chosen currency (a yuan founder reads yuan, not dollars)."""
    code, out, _ = cli(capsys, "estimate", "breakeven", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens",
                       "1000", "--output-tokens", "250", "--requests-per-s", "10", "--api", "deepseek/deepseek-chat",
                       "--currency", "CNY")
    assert code == 0
    assert "¥" in out.splitlines()[0] and "$" not in out
