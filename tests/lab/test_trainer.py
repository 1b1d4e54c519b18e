"""The trainer: overfits one batch, resumes step for step, detects divergence, stops on request,
early-stops, classifies, and refuses bad input with one-line messages."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import RunError, ValidationError
from engine.lab import checkpoint as ck
from engine.lab.trainer import TrainConfig, lr_at, train
from engine.store import Registry

# A very small model so the whole file runs in seconds on a shared 2-core CPU.
SMALL = dict(preset="tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, context=32, device="cpu",
             threads=1, sample_tokens=0, eval_batches=2)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    return tmp_path


def _cfg(home: Path, name: str, **kw) -> TrainConfig:
    base = dict(SMALL, sample="arithmetic", out=str(home / "runs" / name), batch_size=4, max_steps=8, eval_every=4)
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warmup_then_cosine():
    kw = dict(lr=1.0, warmup=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1) and lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half way down the cosine: (1 + 0.1) / 2
    assert lr_at(110, **kw) == pytest.approx(0.1) and lr_at(500, **kw) == pytest.approx(0.1)
    assert all(lr_at(s, **kw) >= lr_at(s + 1, **kw) for s in range(10, 120))


def test_overfits_one_batch(home):
    r = train(_cfg(home, "overfit", overfit_one_batch=True, max_steps=120, lr=1e-2, warmup_steps=10,
                   eval_every=1000))
    losses = Registry().metrics(r.name)["train_loss"]
    assert losses.iloc[0] > 4.0  # ~ln(258) at init
    assert r.train_loss < 0.1 * losses.iloc[0], f"loss went {losses.iloc[0]:.3f} -> {r.train_loss:.3f}"
    d = r.to_dict()
    for key in ("run_dir", "params", "steps", "train_loss", "val_loss", "tokens_per_s", "checkpoint"):
        assert key in d
    assert "val_accuracy" not in d and d["steps"] == 120 and d["params"] == r.params > 0


def test_resume_is_step_for_step_identical(home):
    full = train(_cfg(home, "full", dropout=0.1))  # dropout: the RNG state must be restored too
    first = train(_cfg(home, "half", dropout=0.1, stop_at=4))
    assert first.status == "stopped" and first.steps == 4 and Path(first.checkpoint).name == "step-000004"
    resumed = train(TrainConfig(resume=str(home / "runs" / "half"), threads=1))
    assert resumed.status == "finished" and resumed.steps == 8 and resumed.resumed_from_step == 4
    reg = Registry()
    a, b = reg.metrics(full.name), reg.metrics(first.name)
    assert list(a["step"]) == list(b["step"]) == list(range(1, 9))
    assert a["train_loss"].tolist() == b["train_loss"].tolist()  # exact float equality
    assert a["val_loss"].dropna().tolist() == b["val_loss"].dropna().tolist()
    assert a["lr"].tolist() == b["lr"].tolist()
    assert reg.get_run(first.name)["status"] == "finished"
    # nothing left to do: refused without touching the finished run
    with pytest.raises(ValidationError, match="already at step 8"):
        train(TrainConfig(resume=str(home / "runs" / "half")))
    assert reg.get_run(first.name)["status"] == "finished"


def test_divergence_stops_with_clear_message_and_no_bad_checkpoint(home):
    with pytest.raises(RunError, match="diverged at step") as info:
        train(_cfg(home, "boom", lr=1e6, warmup_steps=0, max_steps=30, eval_every=100, checkpoint_every=1000))
    run = Registry().get_run("boom")
    assert run["status"] == "diverged" and "diverged at step" in run["error"]
    assert ck.latest_path(home / "runs" / "boom") is None
    assert info.value.result["checkpoint"] is None


def test_stop_flag_checkpoints_and_stops(home):
    reg = Registry()

    def progress(event):
        if event.get("step", 0) >= 3:
            reg.request_stop("stopme")

    r = train(_cfg(home, "stopme", max_steps=400, eval_every=1000), registry=reg, progress=progress)
    assert r.status == "stopped" and 3 <= r.steps < 400
    run = reg.get_run("stopme")
    assert run["status"] == "stopped" and run["summary"]["steps"] == r.steps
    assert ck.load(home / "runs" / "stopme").step == r.steps


def test_early_stopping(home):
    r = train(_cfg(home, "early", max_steps=400, eval_every=1, early_stop_patience=2, lr=1e-12, warmup_steps=0,
                   min_lr_ratio=1.0))
    assert r.status == "finished" and r.steps < 400 and r.stopped_reason.startswith("early stopping")


def test_classification_reports_accuracy_and_f1(home):
    r = train(_cfg(home, "cls", sample="sentiment", task="classify", max_steps=6, eval_every=3, context=64))
    d = r.to_dict()
    assert 0.0 <= d["val_accuracy"] <= 1.0 and 0.0 <= d["val_f1"] <= 1.0
    df = Registry().metrics(r.name)
    assert df["val_acc"].notna().sum() == 2


def test_bad_input_is_one_line_validation_error(home, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValidationError, match="empty"):
        train(_cfg(home, "e1", sample=None, data=str(empty)))
    assert Registry().get_run("e1")["status"] == "failed"
    short = tmp_path / "short.txt"
    short.write_text("hello world\n" * 3)
    with pytest.raises(ValidationError, match="context"):
        train(_cfg(home, "e2", sample=None, data=str(short)))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02" * 1000)
    with pytest.raises(ValidationError, match="binary"):
        train(_cfg(home, "e3", sample=None, data=str(binary)))
    # an occupied run folder is refused
    busy = home / "runs" / "busy"
    busy.mkdir(parents=True)
    (busy / "something").write_text("x")
    with pytest.raises(ValidationError, match="not empty"):
        train(_cfg(home, "busy"))
    with pytest.raises(ValidationError, match="divisible"):
        train(_cfg(home, "div", batch_size=5, grad_accum=2))
    with pytest.raises(ValidationError):
        train(replace(_cfg(home, "lr"), lr=-1.0))


def test_grad_accum_matches_full_batch(home):
    a = train(_cfg(home, "ga1", max_steps=3, eval_every=100))
    b = train(_cfg(home, "ga2", max_steps=3, eval_every=100, grad_accum=2))
    la = Registry().metrics(a.name)["train_loss"].tolist()
    lb = Registry().metrics(b.name)["train_loss"].tolist()
    assert la == pytest.approx(lb, abs=1e-5)
    assert math.isfinite(a.val_loss)


def test_out_of_memory_is_a_run_error_with_a_smaller_batch(home, monkeypatch):
    import torch

    from engine.lab import model as model_mod

    def boom(self, idx, mask=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model_mod.Transformer, "forward", boom)
    with pytest.raises(RunError, match="does not fit") as info:
        train(_cfg(home, "oom", batch_size=8))
    assert "--batch-size 4" in str(info.value)
    run = Registry().get_run("oom")
    assert run["status"] == "failed" and "--batch-size 4" in run["error"]
