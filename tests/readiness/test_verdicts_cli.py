"""Verdicts follow the workspace's artifacts (a new data check, run, calibration or serving
measurement changes them); the CLI prints the contract's fields and writes the report."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from engine.cli import main
from engine.datacheck import job
from engine.readiness.assess import CONTRACT, assess
from engine.readiness.profile import example_profile
from engine.store import Registry
from engine.workspace import registry_path

PROFILE = """company = "Acme <script>alert(1)</script> & Co"
cash_usd = "2M"
monthly_burn_usd = 120000
daily_active_users = 5000
monthly_growth = 0.1
requests_per_user_per_day = 20
prompt_tokens = 1000
output_tokens = 250
serving_model = "llama-3-8b"
serving_gpu = "h100-sxm"
p95_latency_s = 5
subscription_usd_per_user_month = 20

[[training]]
model = "llama-3-8b"
tokens = "1T"
gpu = "h100-sxm"
gpus = 64

[scenarios.slow]
monthly_growth = 0.01
daily_active_users = 500
"""


def _areas(result) -> dict:
    return {a.id: a for a in result.areas}


def test_verdicts_change_when_the_artifacts_change(tmp_path):
    profile = example_profile()
    before = _areas(assess(profile, samples=100))
    assert {before[k].status for k in ("data", "model", "latency")} == {"no data yet"}
    assert "catalog's typical MFU" in before["training"].reason

    # A data check: the data area reads its score and top finding.
    csv = tmp_path / "d.csv"
    csv.write_text("id,x\n" + "".join(f"{i % 5},{i % 5}\n" for i in range(20)))
    job.start_check({"path": str(csv)}, inline=True)
    after_check = _areas(assess(profile, samples=100))
    assert after_check["data"].status != "no data yet" and "d.csv scores" in after_check["data"].reason

    # A training run that learned: validation loss 4.0 -> 2.0.
    reg = Registry()
    reg.create_run("r1", {"preset": "tiny"}, tmp_path / "runs" / "r1")
    reg.log_metrics("r1", 10, val_loss=4.0)
    reg.log_metrics("r1", 20, val_loss=2.0)
    reg.set_status("r1", "finished", summary={"val_loss": 2.0, "best_val_loss": 2.0})
    model = _areas(assess(profile, samples=100))["model"]
    assert model.status == "ready" and "50% below its first evaluation" in model.reason
    # A newer run that failed blocks the model area.
    reg.create_run("r2", {"preset": "tiny"}, tmp_path / "runs" / "r2")
    reg.set_status("r2", "failed", error="diverged at step 3")
    assert _areas(assess(profile, samples=100))["model"].status == "blocked"

    # A calibration on the training GPU model: its measured MFU (0.2, half the catalog's 0.4) is used.
    cost_before = assess(profile, samples=100).projection["training_cost_usd"]
    reg.create_run("cal", {}, tmp_path / "runs" / "cal", kind="calibrate", status="running")
    reg.set_status("cal", "finished", summary={"preset": "tiny", "device_name": "NVIDIA H100 80GB HBM3", "mfu": 0.2,
                                               "tokens_per_s": 1.0, "achieved_tflops": 1.0})
    result = assess(profile, samples=100)
    assert "measured by calibration cal" in _areas(result)["training"].reason
    assert result.projection["training_cost_usd"] == pytest.approx(2 * cost_before, rel=1e-6)


def test_cli_json_has_the_contract_fields(tmp_path, capsys):
    path = tmp_path / "company.toml"
    path.write_text(PROFILE)
    assert main(["readiness", "--profile", str(path), "--json", "--samples", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (*CONTRACT, "quantiles", "areas"):
        assert key in out
    assert set(out["quantiles"]) >= {"training_cost_usd", "serving_cost_per_month_usd", "runway_months_after_training"}
    assert all(set(q) == {"p10", "p50", "p90"} for q in out["quantiles"].values())
    assert [a["id"] for a in out["areas"]] == ["training", "serving", "data", "model", "latency"]
    assert all(set(a) >= {"id", "status", "reason"} for a in out["areas"])
    assert out["assumptions"]["peak_to_average"] == 2.0
    assert main(["readiness", "--profile", str(path), "--scenario", "slow", "--json", "--samples", "200"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert slow["scenario"] == "slow" and slow["revenue_per_month_usd"] == pytest.approx(500 * 20)


@pytest.mark.parametrize("text, words", [
    (PROFILE.replace("daily_active_users = 5000", "daily_active_users = 0"), "daily_active_users must be > 0"),
    (PROFILE.replace('cash_usd = "2M"', "cash_usd = -5"), "cash_usd must be >= 0"),
    (PROFILE.replace("monthly_growth = 0.1", "monthly_growth = 100"), "monthly_growth"),
    (PROFILE + "\nfavourite_colour = 'red'\n", "unknown key 'favourite_colour'"),
    (PROFILE.replace("gpus = 64", 'gpus = "lots"'), "training[0].gpus"),
])
def test_cli_bad_profile_exits_2_with_one_line(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["readiness", "--profile", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and words in captured.err and captured.err.count("\n") == 1


def test_cli_unknown_scenario_and_report_suffix(tmp_path, capsys):
    path = tmp_path / "company.toml"
    path.write_text(PROFILE)
    assert main(["readiness", "--profile", str(path), "--scenario", "nope", "--json"]) == 2
    assert "scenarios: base, slow" in capsys.readouterr().err
    assert main(["readiness", "--profile", str(path), "--report", str(tmp_path / "r.pdf")]) == 2
    assert ".html, .md or .json" in capsys.readouterr().err
    assert not (tmp_path / "r.pdf").exists()


def test_reports_html_md_json(tmp_path, capsys):
    path = tmp_path / "company.toml"
    path.write_text(PROFILE)
    for suffix in ("html", "md", "json"):
        out = tmp_path / f"r.{suffix}"
        assert main(["readiness", "--profile", str(path), "--report", str(out), "--samples", "200"]) == 0
        assert f"report       {out}" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    assert page.count("* plotly.js v") == 1 and "<script src=" not in page and "<link" not in page  # offline
    assert page.count("Plotly.newPlot(") == 2  # the tornado and the cash fan
    assert "<script>alert(1)" not in page and "Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    assert "@media print" in page
    md = (tmp_path / "r.md").read_text()
    assert "<script>" not in md and "| training |" in md and "P10 / P50 / P90" in md
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["scenario"] == "base" and data["areas"]


def _serve_calibration(name: str, device_name: str, prefill: float, decode: float) -> None:
    """A finished run as the inference room's ``calibrate --serve`` records it (kind serve-calibrate),
    written by hand so this test does not need torch or that room's code."""
    Registry()
    now = time.time()
    summary = {"device": "cuda", "device_name": device_name, "implied_prefill_efficiency": prefill,
               "implied_decode_efficiency": decode, "levels": []}
    with sqlite3.connect(registry_path()) as conn:
        conn.execute("INSERT INTO runs(name, run_dir, kind, status, config, summary, created, updated) VALUES "
                     "(?, '/tmp/x', 'serve-calibrate', 'finished', '{}', ?, ?, ?)", (name, json.dumps(summary), now, now))


def test_a_serving_calibration_on_the_serving_gpu_sets_the_efficiencies():
    profile = example_profile()
    before = assess(profile, samples=100)
    assert _areas(before)["latency"].status == "no data yet"
    # A calibration on this CPU does not describe an H100: defaults stay, and the reason says why.
    _serve_calibration("sc-cpu", "AMD EPYC (cpu)", 0.5, 0.5)
    cpu = assess(profile, samples=100)
    assert "ran on AMD EPYC (cpu), not a h100-sxm" in cpu.projection["serving_speed_source"]
    assert cpu.projection["serving_requests_per_s_per_replica"] == pytest.approx(
        before.projection["serving_requests_per_s_per_replica"])
    # One on an H100 at lower efficiencies than the defaults (0.6, 0.8): fewer requests per replica.
    _serve_calibration("sc-h100", "NVIDIA H100 80GB HBM3", 0.3, 0.4)
    h100 = assess(profile, samples=100)
    assert h100.projection["serving_speed_source"].startswith("estimator with efficiencies measured by serving "
                                                              "calibration sc-h100")
    assert h100.projection["serving_requests_per_s_per_replica"] < 0.6 * before.projection["serving_requests_per_s_per_replica"]
    latency = _areas(h100)["latency"]
    assert latency.status in ("ready", "at risk", "blocked") and "no p95 measured yet" in latency.reason
    assert "serving calibration sc-h100" in _areas(h100)["serving"].reason


def test_the_model_area_quotes_the_evaluation_report_when_there_is_one():
    from engine.readiness.areas import model_area

    run = {"name": "r1", "status": "finished", "val_loss": 0.4, "evaluation": {"accuracy": 0.91, "macro_f1": 0.88}}
    area = model_area(run, first_val_loss=0.7)
    assert area.status == "ready" and "evaluation: accuracy 91.0%, macro F1 0.880" in area.reason
    assert "evaluation:" not in model_area({**run, "evaluation": None}, 0.7).reason
