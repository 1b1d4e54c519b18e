"""Demo mode (PREFLIGHT_DEMO=1) refuses every write path in the engine, before anything is written;
reads, estimates and reports keep working."""

from __future__ import annotations

import pytest

from engine import workspace
from engine.errors import ValidationError


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")


def _writes():
    from engine.datacheck import job
    from engine.lab import jobs
    from engine.lab.trainer import TrainConfig
    from engine.readiness.profile import example_profile
    from engine.readiness.store import ScenarioStore

    store = ScenarioStore()
    return {
        "upload": lambda: workspace.save_upload("x.csv", b"a,b\n1,2\n"),
        "data check": lambda: job.start_check({"path": "x.csv"}, inline=True),
        "train": lambda: jobs.start_training(TrainConfig(sample="stories", max_steps=1)),
        "calibrate": lambda: jobs.start_calibration("tiny", "cpu"),
        "stop": lambda: jobs.stop_run("r1"),
        "terminate": lambda: jobs.terminate("r1"),
        "resume": lambda: jobs.resume_run("r1"),
        "delete run": lambda: jobs.delete_run("r1"),
        "save scenario": lambda: store.save("s1", example_profile()),
        "copy scenario": lambda: store.copy("base", "s2"),
        "rename scenario": lambda: store.rename("base", "s3"),
        "delete scenario": lambda: store.delete("base"),
    }


def test_every_write_path_refuses_in_demo_mode(monkeypatch, tmp_path):
    from engine.readiness.profile import example_profile
    from engine.readiness.store import ScenarioStore
    from engine.store import Registry

    ScenarioStore().save("base", example_profile())  # before demo mode: something to copy, rename, delete
    Registry().create_run("r1", {}, workspace.runs_dir() / "r1")
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    for what, call in _writes().items():
        with pytest.raises(ValidationError, match="read-only demo") as exc:
            call()
        assert "\n" not in str(exc.value), what
    assert workspace.list_uploads() == []
    assert not (workspace.home() / "checks").exists() or not any((workspace.home() / "checks").iterdir())
    assert ScenarioStore().names() == ["base"] and Registry().get_run("r1")["status"] == "queued"


def test_reads_estimates_and_reports_work_in_demo_mode(demo, tmp_path):
    from engine.cli import main
    from engine.readiness import readiness
    from engine.readiness.assess import assess
    from engine.readiness.profile import example_profile
    from engine.readiness.report import write_report
    from engine.readiness.store import ScenarioStore

    assert ScenarioStore().names() == []
    result = assess(example_profile(), samples=100).to_dict()
    assert write_report(result, tmp_path / "r.md").exists()
    assert readiness().data is None
    assert main(["estimate", "train", "--model", "llama-3-8b", "--tokens", "1T", "--gpu", "h100-sxm", "--json"]) == 0
