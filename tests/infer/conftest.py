"""Two tiny trained runs for the inference tests (a character LM and a classifier), trained once per session
in a temporary workspace: 2 layers, 64 wide, context 32, a few steps (seconds on 2 cores)."""

from __future__ import annotations

import os

import pytest

TINY = dict(preset="tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, context=32, device="cpu",
            threads=1, batch_size=4, eval_batches=1, sample_tokens=0)


@pytest.fixture(scope="session")
def infer_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("infer-home")
    old = os.environ.get("PREFLIGHT_HOME")
    os.environ["PREFLIGHT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("PREFLIGHT_HOME", None)
    else:
        os.environ["PREFLIGHT_HOME"] = old


@pytest.fixture(autouse=True)
def _keep_home(infer_home, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(infer_home))


def _train(home, name, **kw):
    from engine.lab.trainer import TrainConfig, train
    from engine.store import Registry

    cfg = TrainConfig(**TINY, out=str(home / "runs" / name), name=name, registry=str(Registry().path), **kw)
    res = train(cfg)
    assert res.status == "finished", res
    return home / "runs" / name


@pytest.fixture(scope="session")
def lm_run(infer_home):
    return _train(infer_home, "lm-char", sample="stories", tokenizer="char", max_steps=4, eval_every=4)


@pytest.fixture(scope="session")
def cls_run(infer_home):
    return _train(infer_home, "cls", sample="sentiment", task="classify", max_steps=2, eval_every=2)


@pytest.fixture(scope="session")
def lm(lm_run):
    from engine.lab.loader import load_run

    return load_run(lm_run)


@pytest.fixture(scope="session")
def cls(cls_run):
    from engine.lab.loader import load_run

    return load_run(cls_run)
