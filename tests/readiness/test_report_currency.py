"""The readiness report follows the currency setting (issue 11 item 10): HTML, Markdown, the charts and
the CLI's --currency, while the JSON keeps its *_usd fields."""

from __future__ import annotations

import json

from engine.cli import main
from engine.money import format_money, get_currency
from engine.readiness.assess import assess
from engine.readiness.charts import cash_fan, tornado
from engine.readiness.profile import example_profile
from engine.readiness.report import render_html, render_markdown


def test_report_and_charts_in_yuan():
    cny = get_currency("CNY", 7.0)
    result = assess(example_profile(), samples=200, currency=cny).to_dict()
    md = render_markdown(result, cny)
    assert "¥" in md and "$" not in md.split("## Assumptions")[0]
    cost = result["training_cost_usd"] * 7.0
    assert format_money(result["training_cost_usd"], cny) in md and format_money(cost / 7.0) not in md
    fan = cash_fan(result["uncertainty"]["fan"], None, cny)
    assert fan.layout.yaxis.title.text == "CNY" and fan.layout.yaxis.tickprefix == "¥"
    assert fan.data[2].y[0] == result["uncertainty"]["fan"]["p50"][0] * 7.0
    assert "(CNY)" in tornado(result["uncertainty"]["tornado"], cny).layout.xaxis2.title.text
    assert "¥" in render_html(result, cny)
    usd = assess(example_profile(), samples=200).to_dict()
    assert "$" in render_markdown(usd).split("## Assumptions")[0] and "¥" not in render_markdown(usd)  # USD by default


def test_cli_report_in_the_chosen_currency(tmp_path, capsys):
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(example_profile().to_dict()), encoding="utf-8")
    out = tmp_path / "r.md"
    assert main(["readiness", "--profile", str(profile), "--currency", "EUR", "--exchange-rate", "0.9",
                 "--samples", "100", "--report", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["training_cost_usd"] > 0 and printed["currency"]["code"] == "EUR"
    assert "€" in out.read_text(encoding="utf-8")
