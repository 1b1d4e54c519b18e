"""The inference room on model folders (engine/infer/hf_infer.py): ONNX through onnxruntime-genai's builder,
greedy parity with transformers on torch and onnxruntime, a LoRA run served on both, evaluation."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lora_run(hf_models, text_file, tmp_path_factory):
    from engine.lab.hf_loop import train_hf
    from engine.lab.hf_train import HFTrainConfig
    from engine.store import Registry

    out = tmp_path_factory.mktemp("lora-run") / "run"
    train_hf(HFTrainConfig(hf_model=str(hf_models["qwen2"]), out=str(out), data=str(text_file), rank=4, context=32,
                           max_steps=3, batch_size=2, eval_every=3, eval_batches=1, device="cpu", lr=1e-2),
             registry=Registry(out.parent / "reg.sqlite"))
    return out


def test_lora_run_greedy_parity_torch_onnxruntime_transformers(lora_run, tmp_path, monkeypatch):
    import torch

    from engine.infer.hf_infer import HFOrtRunner, HFTorchRunner, export_onnx, greedy, model_folder
    from engine.lab.hf_model import load_hf

    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path))
    folder = model_folder(run=str(lora_run))
    assert folder == lora_run / "merged"
    exp = export_onnx(folder, "fp32", "cpu")
    assert exp.parity["tokens_equal"] and exp.parity["max_abs_logit_diff"] < 1e-3
    assert export_onnx(folder, "fp32", "cpu").cached
    loaded = load_hf(folder)
    prompt = np.array([[4, 17, 29, 40, 51]], dtype=np.int64)
    with torch.no_grad():
        ref = loaded.model.generate(torch.from_numpy(prompt), max_new_tokens=10, min_new_tokens=10, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id)[0, 5:].tolist()
    assert greedy(HFTorchRunner(loaded.model), prompt, 10) == ref
    assert greedy(HFOrtRunner(exp.path, loaded.model.config), prompt, 10) == ref


def test_generate_and_evaluate_cli(lora_run, text_file, capsys):
    import json

    from engine.cli import main

    assert main(["generate", "--run", str(lora_run), "--prompt", "the cat", "--max-new-tokens", "5",
                 "--temperature", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chat_template"] and out["new_tokens"] <= 5 and out["backend"] == "torch"
    from engine.lab.hf_evaluate import evaluate_hf

    assert main(["evaluate", "--run", str(lora_run), "--context", "32", "--json"]) == 0  # the run's own data
    assert json.loads(capsys.readouterr().out)["bits_per_byte"] > 0
    ev = evaluate_hf(run=str(lora_run), data=str(text_file), context=32, max_windows=4)
    assert ev["tokens"] == 4 * 32 and ev["bits_per_byte"] > 0 and ev["perplexity"] == pytest.approx(
        np.exp(ev["val_loss"]))


def test_bench_and_serving_calibration_on_a_folder(hf_models, capsys, tmp_path, monkeypatch):
    import json

    from engine.cli import main

    import functools

    from engine.infer import serve_calibrate

    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path))
    # the bandwidth probe's 256 MiB copy is tested with the serving calibration; 16 MiB is enough here
    monkeypatch.setattr(serve_calibrate, "measure_bandwidth",
                        functools.partial(serve_calibrate.measure_bandwidth, 16 << 20, 0.05))
    assert main(["bench", "--hf-model", str(hf_models["llama"]), "--backends", "torch,onnxruntime,tensorrt",
                 "--dtypes", "fp32,int4", "--batches", "1,2", "--seq-len", "16", "--iters", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    got = {(r["backend"], r["dtype"], r["batch"]) for r in d["decode"]}
    assert {("torch", "fp32", 1), ("torch", "fp32", 2), ("onnxruntime", "fp32", 1), ("onnxruntime", "fp32", 2)} <= got
    reasons = {(s["backend"], s["dtype"]): s["reason"] for s in d["skipped"]}
    assert "int8/int4 run on onnxruntime" in reasons[("torch", "int4")] and ("tensorrt", "fp32") in reasons  # said why
    assert all(r["predicted_decode_tokens_per_s"] > 0 for r in d["decode"])
    from engine.infer.serve_calibrate import ServeCalibrateInput, calibrate_serve

    cal = calibrate_serve(ServeCalibrateInput(hf_model=str(hf_models["llama"]), backend="torch", levels=(1, 2),
                                              prompt_tokens=8, output_tokens=4, repeats=1)).to_dict()
    assert [r["concurrency"] for r in cal["levels"]] == [1, 2] and cal["levels"][0]["predicted_decode_tokens_per_s"] > 0


def test_the_one_run_loader_dispatches_a_model_folder_run(lora_run):
    """engine.lab.loader.load_run is the one loader of a run: a run that fine-tuned a model folder loads its
    merged folder (adapters merged) through the model-folder loader, with the same weights."""
    import torch

    from engine.lab.hf_model import load_hf
    from engine.lab.loader import load_run, model_kind, run_config

    assert model_kind(run_config(lora_run)) == "hf"
    through_run = load_run(lora_run)
    direct = load_hf(lora_run / "merged")
    ids = torch.tensor([[4, 17, 29, 40]])
    with torch.no_grad():
        assert torch.equal(through_run.model(ids).logits, direct.model(ids).logits)
