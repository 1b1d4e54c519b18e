"""Currencies (issue 11 item 10): conversion, formatting, parsing, the CLI's --currency, and prices
typed in the chosen currency."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from engine import catalog, money
from engine.cli import main
from engine.errors import ValidationError
from engine.money import convert_result, format_amount, format_money, get_currency, parse_money


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys, *argv) -> dict:
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# ---- reference data --------------------------------------------------------------------------------

def test_currency_rows_have_rate_source_and_date():
    rows = {row["code"]: row for row in catalog.currency_rows()}
    assert list(rows) == ["USD", "CNY", "EUR"]
    assert rows["USD"]["per_usd"] == 1.0
    for row in rows.values():
        assert row["symbol"] and row["name"] and row["source"] and row["date"]
    assert rows["CNY"]["symbol"] == "¥" and 6 < rows["CNY"]["per_usd"] < 8
    assert rows["EUR"]["symbol"] == "€" and 0.7 < rows["EUR"]["per_usd"] < 1.1
    # a rate whose day was not checked says so
    assert "Assumption" in rows["EUR"]["source"]


# ---- conversion, formatting, parsing ---------------------------------------------------------------

def test_convert_and_format():
    cny = get_currency("cny")
    assert cny.code == "CNY" and cny.per_usd == 7.1287
    assert cny.from_usd(2.0) == pytest.approx(14.2574)
    assert cny.to_usd(14.2574) == pytest.approx(2.0)
    assert format_money(5.576e6, cny) == "¥39.75M"  # DeepSeek-V3's $5.576M at 7.1287
    assert format_money(5.576e6) == "$5.58M"
    assert format_money(1234.5, get_currency("EUR", 0.9)) == "€1.1K"
    assert format_money(2.5, get_currency("EUR", 1.0, date="2026-01-01")) == "€2.50"
    assert format_money(0.0123) == "$0.0123"
    assert format_money(3e9, cny) == "¥21.39B"
    assert format_money(1234.5, cny, compact=False) == "¥8,800.38"  # 1234.5 × 7.1287
    assert format_amount(-5.0) == "-$5.00"
    assert format_amount(float("nan")) == "$–"


def test_user_set_rate_carries_its_date_and_says_so():
    cur = get_currency("CNY", 7.3, date="2026-12-01")
    assert cur.per_usd == 7.3 and cur.date == "2026-12-01" and "set by the user" in cur.source
    assert get_currency("CNY", 7.1287) == get_currency("CNY")  # the catalog's own rate: its own source
    assert get_currency("USD", 1.0).per_usd == 1.0


@pytest.mark.parametrize("code, rate, match", [
    ("JPY", None, "unknown currency"), ("CNY", 0, "exchange rate"), ("CNY", -7, "exchange rate"),
    ("CNY", float("nan"), "exchange rate"), ("CNY", "seven", "exchange rate"), ("USD", 7.0, "USD exchange rate is 1"),
])
def test_bad_currency_or_rate(code, rate, match):
    with pytest.raises(ValidationError, match=match):
        get_currency(code, rate)


@pytest.mark.parametrize("text, usd", [
    ("14.2574", 2.0), ("¥14.2574", 2.0), ("￥14.2574", 2.0), ("14.2574 CNY", 2.0), ("14.2574 cny", 2.0),
    ("14.2574元", 2.0), ("RMB 14.2574", 2.0), ("7.1287M", 1e6), ("¥7,128.7", 1000.0), (14.2574, 2.0),
])
def test_parse_money_in_the_chosen_currency(text, usd):
    assert parse_money(text, get_currency("CNY")) == pytest.approx(usd)


@pytest.mark.parametrize("text", ["$2", "2 USD", "€2", "abc", "-3", "", None, "¥"])
def test_parse_money_refuses_another_currency_or_junk(text):
    with pytest.raises(ValidationError):
        parse_money(text, get_currency("CNY"), name="price")


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e12, allow_nan=False), st.sampled_from(["USD", "CNY", "EUR"]),
       st.floats(0.01, 1000, allow_nan=False))
def test_round_trips(usd, code, rate):
    cur = get_currency(code, None if code == "USD" else rate)
    assert cur.to_usd(cur.from_usd(usd)) == pytest.approx(usd, rel=1e-12, abs=1e-300)
    shown = format_amount(cur.from_usd(usd), cur, compact=False)
    assert shown.startswith(cur.symbol)
    # what the page shows, typed back in, is the same amount to the cent
    assert cur.from_usd(parse_money(shown, cur)) == pytest.approx(cur.from_usd(usd), rel=1e-12, abs=0.006)


def test_convert_result_keeps_usd_and_adds_twins():
    cny = get_currency("CNY")
    out = convert_result({"cost_usd": 2.0, "price_usd_per_hour": 1.0, "by_gpu": [{"cost_usd": 1.0, "gpu": "h800"}],
                          "fits": True, "nothing_usd": None, "gpus": 8}, cny)
    assert out["cost_usd"] == 2.0 and out["cost_cny"] == pytest.approx(14.2574)
    assert out["price_cny_per_hour"] == pytest.approx(7.1287)
    assert out["by_gpu"][0]["cost_cny"] == pytest.approx(7.1287)
    assert "nothing_cny" not in out and "gpus" in out
    assert out["currency"] == {"code": "CNY", "symbol": "¥", "name": cny.name, "per_usd": 7.1287,
                               "source": cny.source, "date": "2025-08-21"}
    assert list(convert_result({"cost_usd": 1.0}, get_currency("USD"))) == ["cost_usd", "currency"]


# ---- the CLI ---------------------------------------------------------------------------------------

TRAIN = ("estimate", "train", "--model", "deepseek-v3", "--tokens", "14.8T", "--gpu", "h800", "--gpus", "2048",
         "--gpu-hours", "2.788M")


def test_cli_without_currency_is_unchanged(capsys):
    obj = cli_json(capsys, *TRAIN, "--price", "2")
    assert "currency" not in obj and "cost_cny" not in obj and obj["cost_usd"] == pytest.approx(5.576e6)


def test_cli_currency_adds_converted_fields_and_reads_the_price_in_it(capsys):
    """--price is read in the chosen currency: a founder in China types ¥14.2574 for the $2 an H800 hour."""
    obj = cli_json(capsys, *TRAIN, "--currency", "CNY", "--price", "14.2574")
    assert obj["price_usd_per_hour"] == pytest.approx(2.0)
    assert obj["cost_usd"] == pytest.approx(5.576e6)
    assert obj["cost_cny"] == pytest.approx(5.576e6 * 7.1287)
    assert obj["currency"]["code"] == "CNY" and obj["currency"]["date"] == "2025-08-21"
    # an exchange rate of the user's own
    own = cli_json(capsys, *TRAIN, "--currency", "cny", "--exchange-rate", "7", "--price", "14")
    assert own["price_usd_per_hour"] == pytest.approx(2.0) and own["cost_cny"] == pytest.approx(5.576e6 * 7)
    assert own["currency"]["per_usd"] == 7.0 and "set by the user" in own["currency"]["source"]
    # --usd-rate is the same option
    assert cli_json(capsys, *TRAIN, "--currency", "EUR", "--usd-rate", "0.5", "--price", "1")["cost_usd"] == \
        pytest.approx(5.576e6)


def test_cli_currency_on_serve_optimal_gpus_and_sweeps(capsys):
    serve = cli_json(capsys, "estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "512",
                     "--output-tokens", "256", "--currency", "EUR", "--by-gpu")
    rate = serve["currency"]["per_usd"]
    assert serve["cost_per_million_output_tokens_eur"] == pytest.approx(serve["cost_per_million_output_tokens_usd"] * rate)
    assert all(row["price_eur_per_hour"] == pytest.approx(row["price_usd_per_hour"] * rate) for row in serve["by_gpu"])
    # a budget typed in yuan
    opt = cli_json(capsys, "estimate", "optimal", "--budget", "7.1287M", "--gpu", "h800", "--currency", "CNY")
    assert opt["cost_usd"] == pytest.approx(1e6) and opt["cost_cny"] == pytest.approx(7.1287e6)
    assert cli_json(capsys, "estimate", "optimal", "--budget-usd", "1M", "--gpu", "h800", "--currency", "CNY")[
        "cost_usd"] == pytest.approx(1e6)  # --budget-usd stays dollars
    gpus = cli_json(capsys, "gpus", "--currency", "CNY")
    h800 = next(row for row in gpus["gpus"] if row["id"] == "h800")
    assert h800["price_cny_per_hour"] == pytest.approx(2 * 7.1287)


def test_cli_human_output_prints_the_currency(capsys):
    code, out, _ = cli(capsys, *TRAIN, "--currency", "CNY", "--price", "14")
    assert code == 0
    assert "cost_cny" in out and "¥39,032,000.00" in out and "CNY: 7.1287 per USD (2025-08-21" in out
    code, out, _ = cli(capsys, "gpus", "--currency", "EUR")
    assert code == 0 and "€1.71/h" in out  # the H800's $2 at 0.8573


@pytest.mark.parametrize("argv, needle", [
    (TRAIN + ("--currency", "JPY"), "JPY"),
    (TRAIN + ("--exchange-rate", "7"), "--exchange-rate needs --currency"),
    (TRAIN + ("--currency", "CNY", "--exchange-rate", "0"), "exchange rate"),
    (TRAIN + ("--currency", "CNY", "--exchange-rate", "inf"), "inf"),
    (TRAIN + ("--currency", "USD", "--exchange-rate", "7"), "USD exchange rate is 1"),
])
def test_cli_bad_currency_exits_2_with_one_line(capsys, argv, needle):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1


def test_price_help_says_it_is_read_in_the_currency(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", "train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "price per GPU-hour in the --currency" in out and "founder in China types yuan" in out
    assert "--exchange-rate" in out and "--currency" in out


def test_check_and_html_report_in_the_currency(capsys, tmp_path):
    """The data check's estimator sentence (CLI text, JSON and the HTML report) in the currency."""
    from engine.datacheck.samples import write_sample

    path = write_sample("clean_reviews", tmp_path)
    obj = cli_json(capsys, "check", str(path), "--currency", "EUR", "--html", str(tmp_path / "r.html"))
    assert obj["estimate"]["cost_eur"] == pytest.approx(obj["estimate"]["cost_usd"] * 0.8573)
    assert "€" in obj["estimate"]["sentence"] and "$" not in obj["estimate"]["sentence"]
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "under €0.01" in html
    plain = cli_json(capsys, "check", str(path))
    assert "$" in plain["estimate"]["sentence"] and "currency" not in plain


def test_estimate_sentence_amounts():
    from engine.datacheck.runner import estimate_sentence

    est = {"tokens": 2e12, "params": 1e11, "flops": 1.2e24, "gpu_hours": 1e6, "cost_usd": 2.99e6}
    assert estimate_sentence(est).endswith("H100 SXM, about $2,990,000.")
    assert estimate_sentence(est, get_currency("CNY", 7.0)).endswith("about ¥20,930,000.")
    small = dict(est, cost_usd=12.5)
    assert estimate_sentence(small, get_currency("EUR", 0.8)).endswith("about €10.00.")


def test_money_module_has_no_streamlit():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(money.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "streamlit" not in names and "streamlit" not in mods


def test_readiness_in_the_currency(tmp_path, capsys):
    """readiness --currency: the latest check's estimator link gets its converted cost and sentence."""
    from engine.datacheck import job

    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "".join(f"review number {i} was fine,{i % 2}\n" for i in range(40)))
    job.start_check({"path": str(csv)}, inline=True)
    r = cli_json(capsys, "readiness", "--currency", "CNY", "--exchange-rate", "7")
    est = r["data"]["estimate"]
    assert est["cost_cny"] == pytest.approx(est["cost_usd"] * 7) and "¥" in est["sentence"]
    assert r["currency"]["per_usd"] == 7.0


def test_small_amounts_keep_their_digits():
    assert format_amount(0.021252, compact=False) == "$0.02125"  # a cost per million input tokens
    assert format_amount(0.5, compact=False) == "$0.50"
    assert format_amount(0.0, compact=False) == "$0.00"
    assert format_amount(0.021252) == "$0.0213"
