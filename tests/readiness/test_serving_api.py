"""Readiness through an API (issue 18): serving costs tokens × list price, the verdict and the report say
which is cheaper now and at month 12 against self-hosting the named open model."""

from __future__ import annotations

import json
import math

import pytest

from engine.cli import main
from engine.errors import ValidationError
from engine.readiness.assess import Artifacts, assess
from engine.readiness.finance import DAYS_PER_MONTH, break_even_users_api, project, serving_basis
from engine.readiness.profile import example_profile, profile_from_mapping, with_changes
from engine.readiness.report import render_markdown


def _profile(**changes):
    return with_changes(example_profile(), serving_api="deepseek/deepseek-chat", training=[], **changes)


def test_api_serving_by_hand():
    # 5,000 users × 20 requests a day × 730/24 days = 3,041,666.7 requests a month. DeepSeek's ¥2 in / ¥3 out
    # for 1000 + 250 tokens is ¥0.00275 a request, $0.00275 / 7.1287 at the catalog's rate: $1,173.37 a month.
    p = _profile()
    basis = serving_basis(p)
    assert basis.api_cost_per_request_usd == pytest.approx(0.00275 / 7.1287, rel=1e-12)
    proj = project(p, basis, 0.0)
    requests = 5000 * 20 * DAYS_PER_MONTH
    assert proj.serving_cost_per_month_usd == pytest.approx(requests * 0.00275 / 7.1287, rel=1e-12)
    assert proj.serving_gpus_needed == 0 and proj.serving_requests_per_s_per_replica is None
    # break-even: $20 a user-month against 20 × 730/24 × $0.000385765 = $0.23467 of tokens: 120,000 / 19.7653
    per_user = 20 * DAYS_PER_MONTH * 0.00275 / 7.1287
    assert proj.break_even_users == math.ceil(120_000 / (20 - per_user)) == 6072
    assert break_even_users_api(120_000, 0.2, 0.3) is None  # each user costs more in tokens than they pay


def test_verdict_and_report_compare_api_with_self_hosting_now_and_at_month_12():
    r = assess(_profile(), samples=50, artifacts=Artifacts()).to_dict()
    c = r["serving_comparison"]
    assert c["api"] == "deepseek/deepseek-chat" and c["self_host_model"] == "llama-3-8b"
    assert c["month_1"]["api_usd"] == pytest.approx(r["serving_cost_per_month_usd"])
    growth = 1.1 ** 11  # month 12 has 11 months of 10% growth on month 1
    assert c["month_12"]["api_usd"] == pytest.approx(c["month_1"]["api_usd"] * growth)
    assert c["month_1"]["self_host_usd"] == pytest.approx(c["month_1"]["self_host_gpus"] * 2.99 * 730)
    # $1,173 through the API against one H100 at $2,183: the API is cheaper now; at month 12 ($3,348) not
    assert c["month_1"]["cheaper"] == "deepseek/deepseek-chat" and c["month_12"]["cheaper"] == "self-host"
    serving = next(a for a in r["areas"] if a["id"] == "serving")
    assert "deepseek/deepseek-chat is cheaper at month 1" in serving["reason"]
    assert "self-hosting llama-3-8b on h100-sxm is cheaper at month 12" in serving["reason"]
    md = render_markdown(r)
    assert "Cheaper now \\(month 1\\)" in md and "Cheaper at month 12" in md  # Markdown escapes the brackets
    json.dumps(r, allow_nan=False)


def test_unknown_serving_api_is_refused_with_close_names():
    with pytest.raises(ValidationError, match="serving_api: unknown API offer 'deepseek/chat'; did you mean"):
        profile_from_mapping({**example_profile().to_dict(), "serving_api": "deepseek/chat"})


def test_cli_readiness_through_an_api(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**_profile().to_dict()}), encoding="utf-8")
    assert main(["readiness", "--profile", str(path), "--json", "--samples", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["serving_gpus_needed"] == 0 and out["serving_comparison"]["month_12"]["cheaper"] == "self-host"
