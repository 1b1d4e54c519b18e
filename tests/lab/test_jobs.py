"""Training as its own process: start, graceful stop, SIGKILL (the last checkpoint stays loadable and the
registry says the worker was killed), resume, delete."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine.lab import checkpoint as ck
from engine.lab import jobs
from engine.lab.trainer import TrainConfig
from engine.store import Registry

SMALL = dict(preset="tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, context=32, device="cpu",
             threads=1, sample_tokens=0, eval_batches=2, sample="arithmetic", batch_size=4)


@pytest.fixture
def reg(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    return Registry()


def _wait(pred, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(280)
def test_sigkill_leaves_checkpoint_loadable_then_resume(reg):
    name = jobs.start_training(TrainConfig(**SMALL, max_steps=1_000_000, eval_every=10_000, checkpoint_every=3),
                               "killme", registry=reg)
    run = reg.get_run(name)
    assert run["status"] in ("queued", "running") and run["pid"]
    run_dir = run["run_dir"]
    _wait(lambda: ck.latest_path(run_dir) is not None and ck.load(run_dir).step >= 6, what="two checkpoints")
    pid = reg.get_run(name)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not jobs.is_alive(pid), 30, "the worker to die")
    assert name in jobs.refresh(reg)
    run = reg.get_run(name)
    assert run["status"] == "failed" and run["error"].startswith(f"worker was killed (pid {pid} gone)")
    c = ck.load(run_dir)  # the last checkpoint is complete and loads
    assert c.step >= 6 and c.step % 3 == 0 and c.optimizer is not None
    target = c.step + 3
    jobs.resume_run(name, max_steps=target, registry=reg)
    _wait(lambda: reg.get_run(name)["status"] in ("finished", "failed"), what="the resumed run")
    run = reg.get_run(name)
    assert run["status"] == "finished", run["error"]
    steps = reg.metrics(name)["step"].tolist()
    assert steps == list(range(1, target + 1))  # resumed steps replace what the killed worker logged after c.step


@pytest.mark.timeout(200)
def test_sigterm_stops_gracefully_then_delete(reg):
    name = jobs.start_training(TrainConfig(**SMALL, max_steps=1_000_000, eval_every=10_000), "stopme", registry=reg)
    _wait(lambda: not reg.metrics(name).empty, what="first metrics")
    assert jobs.terminate(name, registry=reg)  # SIGTERM: the trainer checkpoints and stops, as with Stop
    _wait(lambda: reg.get_run(name)["status"] == "stopped", 60, "status stopped")
    run = reg.get_run(name)
    assert "SIGTERM" in run["summary"]["stopped_reason"]
    assert ck.load(run["run_dir"]).step == run["summary"]["steps"] > 0
    assert os.path.isfile(os.path.join(run["run_dir"], "log.txt"))
    jobs.delete_run(name, registry=reg)
    assert not os.path.exists(run["run_dir"]) and reg.list_runs().empty


def test_start_refuses_bad_input_before_spawning(reg, tmp_path):
    from engine.errors import ValidationError

    with pytest.raises(ValidationError):
        jobs.start_training(TrainConfig(**{**SMALL, "sample": None}, data=None), "nodata", registry=reg)
    with pytest.raises(ValidationError):
        jobs.start_training(TrainConfig(**{**SMALL, "batch_size": -1}), "neg", registry=reg)
    assert reg.list_runs().empty


def test_train_args_round_trip():
    args = jobs.train_args(TrainConfig(**SMALL, max_steps=7, lr=0.5, compile=True))
    assert args[args.index("--max-steps") + 1] == "7" and args[args.index("--lr") + 1] == "0.5"
    assert "--compile" in args and "--data" not in args
