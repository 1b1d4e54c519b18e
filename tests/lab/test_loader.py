"""The one model loader (engine/lab/loader.py) on a LoRA run, through every consumer: the lab's generate,
evaluate, generate on torch and onnxruntime (CLI), and export. Before it, each of these but the lab's
generate failed on a LoRA run with missing/unexpected state_dict keys (issue 17)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch  # noqa: E402

from engine.errors import ValidationError  # noqa: E402
from engine.lab.loader import load_run  # noqa: E402

SMALL = dict(preset="tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, context=32, device="cpu",
             threads=1, sample_tokens=0, eval_batches=1, batch_size=4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 3-step character LM and a 3-step LoRA run (rank 4, every linear layer) on top of it."""
    from engine.lab.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("lora-runs")
    base = train(TrainConfig(**SMALL, sample="stories", tokenizer="char", out=str(root / "base"), max_steps=3,
                             eval_every=3))
    lora = train(TrainConfig(**SMALL, out=str(root / "lora"), max_steps=3, eval_every=3, lr=3e-2,
                             lora_from=base.run_dir, lora_rank=4, lora_target="all-linear"))
    assert base.status == lora.status == "finished"
    return {"base": base.run_dir, "lora": lora.run_dir}


def test_lora_run_loads_with_its_adapters_merged(runs):
    merged, unmerged, base = load_run(runs["lora"]), load_run(runs["lora"], merge=False), load_run(runs["base"])
    assert merged.lora == {"rank": 4, "alpha": 8.0, "target": "all-linear", "merged": True} and base.lora is None
    assert type(merged.model.blocks[0].attn.q_proj) is torch.nn.Linear  # the plain lab module tree
    assert set(merged.model.state_dict()) == set(base.model.state_dict())
    x = torch.randint(0, merged.config.vocab_size, (2, 16))
    with torch.no_grad():
        m, u, b = merged.model(x), unmerged.model(x), base.model(x)
    assert torch.allclose(m, u, atol=1e-5)      # W + (alpha/r)·B·A in place of W computes the same function
    assert (m - b).abs().max() > 1e-3            # and the adapters changed it (B moved from zero)


def test_lab_generate_and_evaluate_on_a_lora_run(runs):
    from engine.lab.evaluate import EvaluateInput, evaluate
    from engine.lab.jobs import generate

    out = generate(runs["lora"], "Once", max_new_tokens=6, seed=1)
    assert out["step"] == 3 and out["text"].startswith("Once") and out["new_tokens"] <= 6
    rep = evaluate(EvaluateInput(run=runs["lora"], sample_tokens=4))
    assert rep.task == "lm" and rep.step == 3 and 0 < rep.metrics["val_loss"] < 10


def test_cli_generate_on_torch_and_onnxruntime_and_export_on_a_lora_run(runs, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from engine.cli import main

    texts = {}
    for backend in ("torch", "onnxruntime"):
        code = main(["generate", "--run", runs["lora"], "--prompt", "Once", "--backend", backend,
                     "--max-new-tokens", "6", "--seed", "2", "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        texts[backend] = json.loads(out)["tokens"]
    assert texts["torch"] == texts["onnxruntime"]  # the exported graph carries the merged adapters
    code = main(["export", "--run", runs["lora"], "--part", "model", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["parity_rel_err"] < 1e-4


def test_a_model_kind_this_preflight_cannot_load_is_one_line(runs, tmp_path):
    import shutil

    run = tmp_path / "hf-run"
    shutil.copytree(runs["base"], run)
    doc = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**doc, "model_kind": "gguf"}))
    with pytest.raises(ValidationError, match="holds a 'gguf' model") as exc:
        load_run(run)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValidationError, match="best or latest"):
        load_run(runs["base"], "newest")
