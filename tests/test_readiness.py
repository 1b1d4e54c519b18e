"""Readiness reads what the rooms wrote: nothing in a fresh workspace; then the newest data check,
training run and calibration, JSON-clean, through the API and `preflight readiness --json`."""

from __future__ import annotations

import json

from engine.cli import main
from engine.datacheck import job
from engine.readiness import human, readiness
from engine.store import Registry


def test_fresh_workspace_knows_nothing(capsys):
    r = readiness()
    assert r.data is None and r.training is None and r.calibration is None
    assert main(["readiness"]) == 0
    assert "no data check yet" in capsys.readouterr().out


def test_latest_check_run_and_calibration_are_reported(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("id,x\n" + "".join(f"{i % 5},{i % 5}\n" for i in range(20)))
    job.start_check({"path": str(csv)}, inline=True)
    reg = Registry()
    reg.create_run("first", {"preset": "tiny"}, tmp_path / "runs" / "first")
    reg.create_run("second", {"preset": "small"}, tmp_path / "runs" / "second")
    reg.set_status("second", "finished", summary={"steps": 7, "val_loss": 1.25, "tokens_per_s": 1000.0})
    reg.create_run("cal", {}, tmp_path / "runs" / "cal", kind="calibrate", status="running")
    reg.set_status("cal", "finished", summary={"preset": "tiny", "device_name": "CPU", "tokens_per_s": 500.0,
                                               "achieved_tflops": 0.01, "mfu": 0.3, "dtype": "fp32"})
    r = readiness().to_dict()
    assert r["data"]["file"] == "d.csv" and r["data"]["rows"] == 20
    assert any(f["id"] == "duplicate_rows" for f in r["data"]["top_findings"])
    assert r["training"]["name"] == "second" and r["training"]["val_loss"] == 1.25 and r["training"]["error"] is None
    assert r["calibration"]["mfu"] == 0.3
    assert main(["readiness", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["training"]["preset"] == "small"
    assert "val loss 1.250" in human(r)
