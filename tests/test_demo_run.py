"""The demo model shipped in assets/demo_run/ (scripts/make_demo_model.py): small, safetensors, its measured
validation loss recorded and true; a fresh workspace registers it once as the run ``demo`` (no torch needed
for that), ``generate --run demo`` works, and it cannot be deleted or resumed by mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import DEMO_ASSETS, DEMO_META, DEMO_RUN, Registry

META = json.loads((DEMO_ASSETS / DEMO_META).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine two threads wait on each other (3x slower here)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_shipped_run_is_small_safetensors_and_records_how_it_was_made():
    files = [p for p in DEMO_ASSETS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 10 * 1024 * 1024
    assert {p.suffix for p in files} <= {".json", ".safetensors", ""}  # no pickle anywhere
    assert [p.name for p in files if p.suffix == ".safetensors"] == ["model.safetensors"]
    assert META["made_by"] == "scripts/make_demo_model.py" and Path(DEMO_ASSETS.parents[1], META["made_by"]).is_file()
    assert META["seed"] == META["train_config"]["seed"] == 0
    assert META["train_config"]["preset"] == "tiny" and META["train_config"]["sample"] == "stories"
    assert 0 < META["measured"]["val_loss"] < 2.0  # well below ln(258) = 5.55, a byte model at random
    assert META["metrics"] and META["metrics"][-1]["step"] == META["steps"]


def test_a_fresh_workspace_registers_the_demo_once_without_torch(demo_home):
    code = ("import sys; from engine.store import Registry; Registry(); Registry(); "
            "assert 'torch' not in sys.modules, 'registering the demo imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    runs = Registry().list_runs()
    assert list(runs["name"]) == [DEMO_RUN] and runs["shipped"].tolist() == [True]
    run = Registry().get_run(DEMO_RUN)
    assert run["status"] == "finished" and run["kind"] == "train"
    assert Path(run["run_dir"]) == (demo_home / "runs" / DEMO_RUN).resolve()
    assert (Path(run["run_dir"]) / "checkpoints" / META["checkpoint"] / "model.safetensors").is_file()
    assert len(Registry().metrics(DEMO_RUN)) == len(META["metrics"])
    from engine.readiness import latest_training_run
    from engine.readiness.areas import model_area

    latest = latest_training_run()
    assert latest["name"] == DEMO_RUN and latest["shipped"]
    assert model_area(latest).status == "no data yet"  # the demo is not the user's model


def test_no_demo_when_turned_off_or_for_a_registry_outside_the_workspace(demo_home, monkeypatch, tmp_path):
    assert Registry(tmp_path / "elsewhere.sqlite").list_runs().empty
    monkeypatch.setenv("PREFLIGHT_DEMO_RUN", "0")
    assert Registry().list_runs().empty


def test_generate_run_demo_and_its_measured_loss(demo_home, capsys):
    pytest.importorskip("torch")
    from engine.cli import main

    code = main(["generate", "--run", DEMO_RUN, "--prompt", "Once upon a time", "--max-new-tokens", "40", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    assert res["text"].startswith("Once upon a time") and res["new_tokens"] == 40 and res["step"] == META["steps"]
    from engine.lab.evaluate import EvaluateInput, evaluate

    rep = evaluate(EvaluateInput(run=DEMO_RUN, sample_tokens=1))
    assert rep.metrics["val_loss"] == pytest.approx(META["measured"]["val_loss"], rel=1e-5)


def test_the_demo_cannot_be_deleted_or_resumed(demo_home, capsys):
    from engine.cli import main
    from engine.errors import ValidationError
    from engine.lab.jobs import resume_run

    code = main(["runs", "--delete", DEMO_RUN])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "demo model shipped with Preflight" in err
    with pytest.raises(ValidationError, match="shipped"):
        Registry().delete_run(DEMO_RUN, remove_files=False)
    with pytest.raises(ValidationError, match="lora-from"):
        resume_run(DEMO_RUN)
    assert Registry().get_run(DEMO_RUN)["shipped"] and (demo_home / "runs" / DEMO_RUN / DEMO_META).is_file()


def test_lora_from_demo_fine_tunes_the_shipped_model(demo_home):
    pytest.importorskip("peft")
    from engine.lab.jobs import generate
    from engine.lab.trainer import TrainConfig, train

    res = train(TrainConfig(lora_from=DEMO_RUN, lora_rank=2, lora_target="qv", max_steps=2, eval_every=2,
                            batch_size=2, eval_batches=1, sample_tokens=0, device="cpu", threads=1,
                            out=str(demo_home / "runs" / "demo-lora")))
    assert res.status == "finished" and res.trainable_params > 0
    assert generate(res.run_dir, "Once", max_new_tokens=4)["step"] == 2
