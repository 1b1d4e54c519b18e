"""Predicted beside measured step time of a fine-tuning run (engine/lab/hf_train.predict_step_time): the
fine-tuning estimator's model FLOPs per step at this machine's latest calibration, or a stated default."""

from __future__ import annotations

import pytest


def _spec(folder):
    from engine.lab.hf_model import import_spec, inspect_folder

    return import_spec(inspect_folder(folder))


def _calibrated(reg, tmp_path, tflops: float, device: str = "cpu") -> None:
    reg.create_run("cal", {}, tmp_path / "runs" / "cal", kind="calibrate", status="running")
    reg.set_status("cal", "finished", summary={"preset": "tiny", "device": device, "device_name": "test CPU",
                                               "achieved_tflops": tflops, "mfu": 0.5})


def test_lora_flops_per_token_is_4n_plus_6_adapters_plus_attention(hf_models):
    """Hu et al. 2021 / the estimator's docstring: frozen weights 4·N, adapters 6 per parameter, attention 3× forward."""
    from engine.estimate.finetune import lora_trainable_params, model_flops_per_token

    spec = _spec(hf_models["qwen2"])
    per_token, forward = model_flops_per_token(spec, "lora", 4, "qv", 32)
    attn = spec.attention_flops_forward_per_token(32)
    adapters = lora_trainable_params(spec, 4, "qv")
    assert per_token == pytest.approx(4 * spec.params_matmul_active + 6 * adapters + 3 * attn)
    assert forward == pytest.approx(2 * spec.params_matmul_active + 2 * adapters + attn)
    full, _ = model_flops_per_token(spec, "full", 4, "qv", 32)
    assert full == pytest.approx(6 * spec.params_matmul_active + 3 * attn) and full > per_token


def test_run_summary_holds_predicted_beside_measured_step_time(hf_models, text_file, tmp_path):
    from engine.estimate.finetune import model_flops_per_token
    from engine.lab.hf_loop import train_hf
    from engine.lab.hf_train import HFTrainConfig
    from engine.store import Registry

    reg = Registry(tmp_path / "reg.sqlite")
    _calibrated(reg, tmp_path, tflops=0.002)  # 2 GFLOP/s achieved on this "machine"
    cfg = HFTrainConfig(hf_model=str(hf_models["qwen2"]), out=str(tmp_path / "run"), data=str(text_file), rank=4,
                        target="qv", context=32, max_steps=3, batch_size=2, eval_every=3, eval_batches=1, device="cpu")
    res = train_hf(cfg, registry=reg)
    s = reg.get_run(res.name)["summary"]
    per_token, _ = model_flops_per_token(_spec(hf_models["qwen2"]), "lora", 4, "qv", 32)
    assert s["tokens_per_step"] == 2 * 32
    assert s["step_flops"] == pytest.approx(per_token * 64)
    assert s["predicted_step_s"] == pytest.approx(per_token * 64 / 2e9)
    assert s["measured_step_s"] == pytest.approx(s["train_time_s"] / 2)  # steps 2 and 3: the first is warmup
    assert s["measured_step_s"] > 0 and "calibration 'cal'" in s["step_time_basis"]


def test_without_a_calibration_the_default_is_stated(hf_models, tmp_path):
    from engine.lab.device import cpu_matmul_peak
    from engine.lab.hf_train import HFTrainConfig, predict_step_time

    cfg = HFTrainConfig(hf_model=str(hf_models["llama"]), method="full", context=16)
    out = predict_step_time(_spec(hf_models["llama"]), cfg, 64, "cpu", registry=tmp_path / "none.sqlite")
    assert out["step_flops_per_s"] == cpu_matmul_peak()
    assert out["predicted_step_s"] == pytest.approx(out["step_flops"] / out["step_flops_per_s"])
    assert out["step_time_basis"].startswith("no calibration on cpu") and "lower bound" in out["step_time_basis"]


def test_a_cuda_calibration_is_not_used_for_a_cpu_run(hf_models, tmp_path):
    from engine.lab.hf_train import HFTrainConfig, predict_step_time
    from engine.store import Registry

    reg = Registry(tmp_path / "reg.sqlite")
    _calibrated(reg, tmp_path, tflops=300.0, device="cuda")
    cfg = HFTrainConfig(hf_model=str(hf_models["qwen2"]), context=16)
    out = predict_step_time(_spec(hf_models["qwen2"]), cfg, 32, "cpu", registry=reg.path)
    assert out["step_time_basis"].startswith("no calibration on cpu")


def test_lab_page_shows_both_step_times_of_a_fine_tuning_run():
    """A finished HF run's registry rows (no process): measured and predicted step time, their ratio, the basis."""
    from streamlit.testing.v1 import AppTest

    from engine import workspace
    from engine.store import Registry
    from tests.pages.conftest import ROOT, assert_clean

    reg = Registry()
    reg.create_run("ft", {"kind": "hf", "hf_train": {"hf_model": "/m/tiny", "method": "lora"},
                          "resolved": {"max_steps": 3, "device": "cpu"}, "trainable_params": 2304},
                   workspace.runs_dir() / "ft", kind="train", status="running")
    reg.log_metrics("ft", rows=[{"step": s, "train_loss": 5.0, "tokens_per_s": 100.0} for s in (1, 2, 3)])
    basis = "calibration 'cal' (tiny on test CPU: 2 GFLOP/s achieved)"
    reg.set_status("ft", "finished", summary={"steps": 3, "device": "cpu", "trainable_params": 2304,
                                              "measured_step_s": 0.15, "predicted_step_s": 0.0012,
                                              "step_time_basis": basis, "predicted_memory_bytes": 3 * 2**20})
    at = AppTest.from_file(str(ROOT / "views" / "lab.py"), default_timeout=90)
    at.session_state["lab_run"] = "ft"
    at.run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Step time, measured"] == "150 ms" and shown["Step time, predicted"] == "1.2 ms"
    assert shown["Step time, measured ÷ predicted"] == "125×" and shown["Model memory, predicted"] == "3.00 MiB"
    assert shown["Trainable params"] == "2.3K" and "MFU" not in shown
    assert any(basis in c.value for c in at.caption)
    assert "tiny · lora" in at.dataframe[0].value["preset"].tolist()


def test_cli_json_has_predicted_beside_measured_step_time(hf_models, text_file, tmp_path, capsys):
    import json

    from engine.cli import main

    rc = main(["train", "--hf-model", str(hf_models["llama"]), "--method", "full", "--data", str(text_file),
               "--max-steps", "2", "--batch-size", "2", "--context", "16", "--eval-every", "2", "--device", "cpu",
               "--out", str(tmp_path / "run"), "--registry", str(tmp_path / "reg.sqlite"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status"] == "finished" and out["method"] == "full"
    assert out["measured_step_s"] > 0 and out["predicted_step_s"] > 0 and out["tokens_per_step"] == 32
    assert out["step_time_basis"].startswith("no calibration on cpu")
