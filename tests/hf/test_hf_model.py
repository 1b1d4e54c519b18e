"""Loading model folders (engine/lab/hf_model.py): six architectures, sharded weights, and every bad folder in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.errors import ValidationError


def test_every_supported_type_loads_and_matches_transformers(hf_models):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.lab.hf_model import load_hf

    for mt, folder in hf_models.items():
        got = load_hf(folder)
        assert got.folder.model_type == mt and got.chat and got.memory.fits
        ref = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
        x = torch.tensor([[5, 9, 20, 33]])
        with torch.no_grad():
            assert torch.equal(got.model(input_ids=x).logits, ref(input_ids=x).logits), mt
    assert load_hf(hf_models["llama"]).folder.sharded  # 40 KB shards with model.safetensors.index.json


def _copy(src, dst, drop=()):
    shutil.copytree(src, dst)
    for name in drop:
        for p in dst.glob(name):
            p.unlink()
    return dst


def test_bad_folders_one_line(hf_models, tmp_path):
    from engine.lab.hf_model import inspect_folder, load_hf

    q = hf_models["qwen2"]
    cases = [
        (_copy(q, tmp_path / "noweights", ["*.safetensors"]), "has no weights"),
        (_copy(q, tmp_path / "notok", ["tokenizer.json"]), "has no tokenizer"),
    ]
    enc = _copy(q, tmp_path / "bert")
    doc = json.loads((enc / "config.json").read_text())
    (enc / "config.json").write_text(json.dumps({**doc, "model_type": "bert"}))
    cases.append((enc, "not a causal language model"))
    odd = _copy(q, tmp_path / "gpt_neox")
    (odd / "config.json").write_text(json.dumps({**doc, "model_type": "gpt_neox"}))
    cases.append((odd, "supported: llama, mistral, qwen2, qwen3, gemma2, phi3"))
    for folder, message in cases:
        with pytest.raises(ValidationError, match=message) as info:
            inspect_folder(folder)
        assert "\n" not in str(info.value)
    small = _copy(q, tmp_path / "smallvocab")
    (small / "config.json").write_text(json.dumps({**doc, "vocab_size": 100}))
    with pytest.raises(ValidationError, match="tokenizer of smallvocab has 300 tokens but config.json's vocab_size is 100"):
        load_hf(small, check_memory=False)


def test_a_model_that_will_not_fit_is_refused_with_both_figures(hf_models, tmp_path):
    from engine.lab.hf_model import inspect_folder, predict_memory, require_fits

    big = _copy(hf_models["llama"], tmp_path / "huge")
    doc = json.loads((big / "config.json").read_text())
    # Llama-3.1-405B's shape (https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json)
    doc.update(hidden_size=16384, intermediate_size=53248, num_hidden_layers=126, num_attention_heads=128,
               num_key_value_heads=8)
    (big / "config.json").write_text(json.dumps(doc))
    check = predict_memory(inspect_folder(big), "full")
    assert not check.fits and check.predicted_bytes > 330e9 * 16  # 334e9 parameters at a 300-token vocabulary
    with pytest.raises(ValidationError, match=r"will not fit: full needs about [\d.]+ GiB predicted .* GiB is available"):
        require_fits(check)
