"""Checkpoints: exact round trip (weights, optimizer, RNG), tied weights stored once, atomic pointer,
pruning, no pickle on load, and a SIGKILLed writer leaving the last checkpoint loadable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from engine.errors import ValidationError
from engine.lab import checkpoint as ck
from engine.lab.model import ModelConfig, Transformer, configure_optimizer, lm_loss


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=64, context=16, n_layers=2, n_heads=2, n_kv_heads=1, d_model=32, d_ff=64)
    return Transformer(cfg)


def _step(model, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 64, (4, 16), generator=g)
    loss = lm_loss(model(x), torch.roll(x, -1, 1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_round_trip_is_exact_and_tied_head_stored_once(tmp_path):
    model = _model()
    opt = configure_optimizer(model, 1e-2)
    for s in range(3):
        _step(model, opt, s)
    path = ck.save(tmp_path, model, opt, step=3, state={"data": {"step": 3}}, val_loss=1.5)
    assert path.name == "step-000003" and (tmp_path / "checkpoints" / "latest").read_text().strip() == path.name
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "tok_emb.weight" in keys  # the tied LM head adds no second copy (it is F.linear on tok_emb)
    torch.rand(5)  # move the RNG on; restore must bring it back
    expected_next = None
    c = ck.load(tmp_path)
    c.restore_rng()
    expected_next = torch.rand(3)
    c.restore_rng()
    assert torch.equal(torch.rand(3), expected_next)

    model2 = _model(seed=123)
    opt2 = configure_optimizer(model2, 1e-2)
    c.restore_model(model2)
    c.restore_optimizer(opt2)
    assert c.step == 3 and c.state["data"] == {"step": 3} and c.state["val_loss"] == 1.5
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    # the optimizers continue identically
    torch.manual_seed(7)
    a = [_step(model, opt, 10 + s) for s in range(3)]
    b = [_step(model2, opt2, 10 + s) for s in range(3)]
    assert a == b


def test_model_with_shared_parameter_keeps_alias(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    m = Tied()
    ck.save(tmp_path, m, step=1)
    c = ck.load(tmp_path)
    assert c.aliases == {"head.weight": "emb.weight"} and set(c.model) == {"emb.weight"}
    m2 = Tied()
    c.restore_model(m2)
    assert torch.equal(m2.head.weight, m.emb.weight) and m2.head.weight is m2.emb.weight


def test_keep_last_and_best_and_resave_same_step(tmp_path):
    model = _model()
    for step in (1, 2, 3, 4):
        ck.save(tmp_path, model, step=step, best=(step == 2), keep_last=2)
    names = [p.name for p in ck.list_checkpoints(tmp_path)]
    assert names == ["step-000002", "step-000003", "step-000004"]  # last 2 plus the best
    assert ck.latest_path(tmp_path, "best").name == "step-000002"
    ck.save(tmp_path, model, step=4, state={"again": True})
    assert ck.load(tmp_path).state["again"] is True
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_load_never_unpickles_and_rejects_garbage(tmp_path, monkeypatch):
    import pickle

    model = _model()
    opt = configure_optimizer(model, 1e-2)
    _step(model, opt, 0)
    path = ck.save(tmp_path, model, opt, step=1)

    def boom(*a, **k):
        raise AssertionError("unpickling during checkpoint load")

    for mod, attr in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(mod, attr, boom)
    c = ck.load(tmp_path)
    c.restore_model(_model())
    c.restore_optimizer(configure_optimizer(_model(), 1e-2))
    monkeypatch.undo()
    (path / "model.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValidationError, match="cannot be read"):
        ck.load(tmp_path)
    with pytest.raises(ValidationError, match="no checkpoint"):
        ck.load(tmp_path / "empty")
    doc = json.loads((path / "state.json").read_text())
    doc["format"] = "other"
    (path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="not a Preflight checkpoint"):
        ck.load(path)


def test_sigkill_while_saving_leaves_latest_loadable(tmp_path):
    """A writer saving checkpoints in a loop is killed with SIGKILL at an arbitrary moment: the
    checkpoint ``latest`` names is complete and loads, and the next save cleans up the debris."""
    script = textwrap.dedent(f"""
        import torch, sys
        from engine.lab import checkpoint as ck
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256))
        opt = torch.optim.AdamW(model.parameters())
        model(torch.randn(2, 256)).sum().backward(); opt.step()
        step = 0
        while True:
            step += 1
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float(step))
            ck.save({str(tmp_path)!r}, model, opt, step=step, state={{"step_check": step}})
            print(step, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        for _ in range(3):
            proc.stdout.readline()
        time.sleep(0.137)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    c = ck.load(tmp_path)
    assert c.step >= 3 and c.state["step_check"] == c.step
    assert all(torch.all(t == float(c.step)) for t in c.model.values())
    assert c.optimizer is not None and len(c.optimizer["state"]) == 4
    ck.save(tmp_path, torch.nn.Linear(2, 2), step=c.step + 1)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
