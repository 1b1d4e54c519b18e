"""Data parallelism: `torchrun --nproc-per-node 2 -m engine train ... --device cpu` (gloo) matches one
process with the same global batch, step for step; so does FSDP (sharded weights and optimizer state),
through a checkpoint and a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ARGS = ["--sample", "arithmetic", "--preset", "tiny", "--n-layers", "2", "--d-model", "64", "--n-heads", "4",
        "--n-kv-heads", "2", "--d-ff", "128", "--context", "32", "--max-steps", "5", "--batch-size", "8",
        "--eval-every", "5", "--eval-batches", "2", "--device", "cpu", "--threads", "1", "--json"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "engine"]


def _env(home):
    env = dict(os.environ, PREFLIGHT_HOME=str(home), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd, home):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(home), timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, proc.stdout  # under torchrun only rank 0 answers
    return json.loads(lines[0])


def _metrics(home, name):
    from engine.store import Registry

    return Registry(home / "registry.sqlite").metrics(name)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ddp") / "home"
    _run([sys.executable, "-m", "engine", "train", *ARGS, "--out", str(home / "runs" / "one")], home)
    return home


def _same_as_single(home, name):
    a, b = _metrics(home, name), _metrics(home, "one")
    assert list(a["step"]) == list(b["step"]) == [1, 2, 3, 4, 5]
    diffs = (a["train_loss"] - b["train_loss"]).abs()
    assert diffs.max() < 1e-5, list(zip(a["train_loss"], b["train_loss"]))
    assert abs(a["val_loss"].iloc[-1] - b["val_loss"].iloc[-1]) < 1e-5
    assert a["train_loss"].iloc[-1] < a["train_loss"].iloc[0]  # it trained
    from engine.lab import checkpoint as ck

    wa, wb = ck.load(home / "runs" / name).model, ck.load(home / "runs" / "one").model
    assert set(wa) == set(wb)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4


@pytest.mark.timeout(240)
def test_two_process_ddp_matches_single_process(home):
    out = _run([*TORCHRUN, "train", *ARGS, "--out", str(home / "runs" / "ddp")], home)
    assert out["world_size"] == 2 and out["steps"] == 5 and out["checkpoint"]
    _same_as_single(home, "ddp")


@pytest.mark.timeout(280)
def test_fsdp_checkpoint_and_resume_match_single_process(home):
    first = _run([*TORCHRUN, "train", *ARGS, "--fsdp", "--stop-at", "3", "--out", str(home / "runs" / "fsdp")], home)
    assert first["status"] == "stopped" and first["steps"] == 3
    done = _run([*TORCHRUN, "train", "--resume", str(home / "runs" / "fsdp"), "--json"], home)
    assert done["status"] == "finished" and done["steps"] == 5 and done["resumed_from_step"] == 3
    _same_as_single(home, "fsdp")
