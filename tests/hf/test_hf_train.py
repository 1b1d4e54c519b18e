"""Fine-tuning a model folder in the lab (engine/lab/hf_train.py): LoRA counts, full, resume, instruction masks."""

from __future__ import annotations

import json

import pytest

from engine.errors import ValidationError


def _cfg(folder, out, **kw):
    from engine.lab.hf_train import HFTrainConfig

    base = dict(hf_model=str(folder), out=str(out), context=32, max_steps=4, batch_size=2, eval_every=2,
                eval_batches=1, device="cpu")
    base.update(kw)
    return HFTrainConfig(**base)


def test_lora_run_counts_and_exports(hf_models, text_file, tmp_path):
    import peft

    from engine.lab.hf_loop import train_hf
    from engine.store import Registry

    reg = Registry(tmp_path / "reg.sqlite")
    res = train_hf(_cfg(hf_models["qwen2"], tmp_path / "run", data=str(text_file), rank=4, target="qv"), registry=reg)
    assert res.status == "finished" and res.steps == 4
    # PEFT's count, and r·(d_in + d_out) per q and v projection (Hu et al. 2021): d 64, q 64, kv 2 heads × 16
    assert res.trainable_params == 2 * (4 * (64 + 64) + 4 * (64 + 32))
    run = tmp_path / "run"
    doc = json.loads((run / "config.json").read_text())
    assert doc["estimated_trainable_params"] == doc["trainable_params"] == res.trainable_params
    assert doc["memory"]["fits"] and doc["memory"]["parts"]["adapters"] > 0
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "merged" / "model.safetensors").is_file() and (run / "merged" / "tokenizer.json").is_file()
    rows = reg.metrics(reg.find_run_by_dir(run)["name"])
    assert list(rows["step"]) == [1, 2, 3, 4] and rows["val_loss"].notna().sum() == 2
    assert peft.__version__


def test_resume_is_step_identical(hf_models, text_file, tmp_path):
    from engine.lab.hf_loop import train_hf
    from engine.lab.hf_train import HFTrainConfig
    from engine.store import Registry

    reg = Registry(tmp_path / "reg.sqlite")
    whole = train_hf(_cfg(hf_models["llama"], tmp_path / "a", data=str(text_file), method="full", max_steps=4),
                     registry=reg)
    part = train_hf(_cfg(hf_models["llama"], tmp_path / "b", data=str(text_file), method="full", max_steps=4, stop_at=2),
                    registry=reg)
    assert part.status == "stopped" and part.steps == 2
    rest = train_hf(HFTrainConfig(resume=str(tmp_path / "b")), registry=reg)
    assert rest.steps == 4 and rest.resumed_from_step == 2
    a = reg.metrics(reg.find_run_by_dir(tmp_path / "a")["name"])
    b = reg.metrics(reg.find_run_by_dir(tmp_path / "b")["name"])
    assert list(a["train_loss"]) == list(b["train_loss"])  # bit-identical on the CPU
    assert whole.trainable_params == whole.params  # full fine-tuning trains every weight
    doc = json.loads((tmp_path / "a" / "config.json").read_text())
    assert doc["estimated_trainable_params"] == whole.params  # the importer counts what transformers builds


def test_instruction_data_masks_the_prompt(hf_models, hf_tokenizer, instruct_file):
    from engine.lab.hf_data import IGNORE, load_instructions

    data = load_instructions(str(instruct_file), hf_tokenizer, prompt_col="question", response_col="answer",
                             context=64, chat=True)
    ids, labels = data.ids["train"][0], data.labels["train"][0]
    head = hf_tokenizer.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True)
    n_prompt = int((labels == IGNORE).sum())
    assert n_prompt > 0 and (labels[n_prompt:] == ids[n_prompt:]).all()
    assert hf_tokenizer.decode(ids[:n_prompt].tolist()).endswith("<|im_start|>assistant\n")
    assert len(head) > 0
    with pytest.raises(ValidationError, match="prompt column 'nope' is not in pairs.csv; its columns: question, answer"):
        load_instructions(str(instruct_file), hf_tokenizer, prompt_col="nope", response_col="answer", context=64,
                          chat=True)


def test_instruction_run_trains(hf_models, instruct_file, tmp_path):
    from engine.lab.hf_loop import train_hf
    from engine.store import Registry

    res = train_hf(_cfg(hf_models["qwen2"], tmp_path / "i", data=str(instruct_file), prompt_col="question",
                        response_col="answer", max_steps=2, context=64), registry=Registry(tmp_path / "r.sqlite"))
    assert res.status == "finished" and res.val_loss is not None


def test_qlora_refused_without_cuda(hf_models, text_file, tmp_path):
    from engine.lab.hf_train import validate

    with pytest.raises(ValidationError, match="QLoRA needs a CUDA GPU with bitsandbytes"):
        validate(_cfg(hf_models["qwen2"], tmp_path / "q", data=str(text_file), method="qlora"))


def test_cli_bad_inputs_exit_2(hf_models, text_file, tmp_path, capsys):
    from engine.cli import main

    rc = main(["train", "--hf-model", str(hf_models["qwen2"]), "--method", "qlora", "--data", str(text_file),
               "--out", str(tmp_path / "x"), "--device", "cpu", "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "QLoRA needs a CUDA GPU" in err[0]
    rc = main(["train", "--hf-model", str(hf_models["phi3"]), "--target", "qv", "--data", str(text_file),
               "--out", str(tmp_path / "y"), "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "target 'qv' names no layer of phi3" in err[0]


def test_peft_trainable_equals_the_estimator(hf_models):
    """PEFT's trainable count on the real transformers module equals lora_trainable_params of the importer's
    ModelSpec, for every type and target with separate q, k, v projections (Phi-3 fuses them: see below)."""
    from peft import LoraConfig, get_peft_model

    from engine.estimate.finetune import lora_trainable_params
    from engine.lab.hf_model import import_spec, inspect_folder, load_hf, lora_modules

    for mt, folder in hf_models.items():
        spec = import_spec(inspect_folder(folder))
        for target in ("qv", "attention", "all-linear"):
            if mt == "phi3" and target == "qv":
                continue
            model = get_peft_model(load_hf(folder, check_memory=False).model,
                                   LoraConfig(r=4, lora_alpha=8, target_modules=lora_modules(mt, target), bias="none"))
            peft_count = model.get_nb_trainable_parameters()[0]
            if mt == "phi3":  # fused qkv_proj / gate_up_proj: r·(d + 3 widths) instead of r·(d + w) per projection
                assert peft_count < lora_trainable_params(spec, 4, target)
            else:
                assert peft_count == lora_trainable_params(spec, 4, target), (mt, target)


def test_stop_request_checkpoints_and_ends_stopped(hf_models, text_file, tmp_path):
    """The page's Stop (the registry's flag) ends an HF run as 'stopped' with a checkpoint to resume from."""
    from engine.lab import checkpoint as ck
    from engine.lab.hf_loop import train_hf
    from engine.store import Registry

    reg = Registry(tmp_path / "reg.sqlite")
    run = tmp_path / "s"

    def stop_soon(event: dict) -> None:
        if event.get("event") == "metrics" and event.get("step", 0) >= 1:
            reg.request_stop(reg.find_run_by_dir(run)["name"])

    res = train_hf(_cfg(hf_models["qwen2"], run, data=str(text_file), max_steps=200, eval_every=100), registry=reg,
                   progress=stop_soon)
    assert res.status == "stopped" and res.steps < 200 and res.stopped_reason == "stopped by request"
    assert ck.latest_path(run) is not None and not (run / "merged").exists()
