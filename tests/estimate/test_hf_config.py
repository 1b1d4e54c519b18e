"""The Hugging Face config.json importer: exact counts against transformers on the meta device, the
published totals, the catalog generated through it, and one-line errors for bad input."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.catalog import hf_config_rows
from engine.errors import ValidationError
from engine.estimate import models as model_specs
from engine.estimate.hf_config import (
    SUPPORTED_MODEL_TYPES,
    load_hf_config,
    params_from_hf_config,
    read_hf_config,
)
from tests.estimate.hf_parity import random_config, transformers_params

ROWS = {row["id"]: row for row in hf_config_rows()}
# The Hub's safetensors totals for these repositories (the "Model size" on each model page).
PUBLISHED = {row["id"]: row["published_params"] for row in hf_config_rows() if row.get("published_params")}


def _transformers():
    pytest.importorskip("torch", reason="meta-device parity needs torch (the lab extra)")
    return pytest.importorskip("transformers", reason="meta-device parity needs transformers (the lab extra)")


@pytest.mark.parametrize("mtype", SUPPORTED_MODEL_TYPES)
def test_random_small_configs_match_transformers_on_meta(mtype):
    _transformers()
    rng = random.Random(f"parity-{mtype}")
    for _ in range(4):
        cfg = random_config(mtype, rng)
        assert load_hf_config(cfg).params_total == transformers_params(cfg), cfg


def test_every_catalog_config_matches_transformers_on_meta():
    _transformers()
    for model_id, row in ROWS.items():
        assert model_specs.get_model(model_id).params_total == transformers_params(row["config"]), model_id


def test_published_totals():
    assert PUBLISHED["qwen2.5-7b"] == 7_615_616_512
    assert len(PUBLISHED) >= 20
    for model_id, total in PUBLISHED.items():
        assert model_specs.get_model(model_id).params_total == total, model_id


def test_catalog_has_the_open_models_with_sources():
    ids = set(model_specs.models())
    assert len(ids) >= 25
    for needed in ("qwen2.5-0.5b", "qwen2.5-72b", "qwen3-8b", "qwen3-30b-a3b", "qwen3-235b-a22b",
                   "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-32b", "deepseek-v2-lite", "glm-4-9b",
                   "llama-3.1-8b", "llama-3.2-1b", "llama-3.3-70b", "gemma-2-9b", "gemma-2-27b", "gemma-3-1b",
                   "phi-3-mini-4k", "phi-4", "mistral-nemo-12b", "mistral-small-24b", "yi-1.5-9b", "llama-3-8b"):
        assert needed in ids
    for row in ROWS.values():
        assert row["source"].startswith("https://huggingface.co/") and row["source"].endswith("/blob/main/config.json")
        assert len(row["date"]) == 10


def test_moe_active_counts_every_touched_parameter():
    spec = model_specs.get_model("qwen3-30b-a3b")
    assert spec.params_total == 30_532_122_624
    # embeddings + head + per layer: attention, norms, router, 8 of 128 experts
    layer = spec.attention_params() + spec.layer_norm_params() + 2048 * 128 + 8 * 3 * 2048 * 768
    assert spec.params_active == 2 * 151936 * 2048 + 48 * layer + 2048
    lite = model_specs.get_model("deepseek-v2-lite")
    assert (lite.n_dense_layers, lite.n_shared_experts, lite.q_lora_rank) == (1, 2, 0)


def test_structure_read_from_configs():
    g2 = model_specs.get_model("gemma-2-9b")
    assert (g2.norms_per_layer, g2.sliding_window, g2.full_attention_layers, g2.tied_embeddings) == (4, 4096, 21, True)
    g3 = model_specs.get_model("gemma-3-1b")
    assert (g3.qk_norm, g3.full_attention_layers, g3.sliding_window) == (True, 4, 512)
    # the KV cache of a long sequence: 4 full layers keep 8192 positions, 22 windowed keep 512
    assert g3.cached_positions(8192) == pytest.approx((4 * 8192 + 22 * 512) / 26)
    glm = model_specs.get_model("glm-4-9b")
    assert (glm.qkv_bias, glm.o_bias, glm.rotary_fraction) == (True, False, 0.5)
    q = model_specs.get_model("qwen2.5-7b")
    assert (q.qkv_bias, q.o_bias, q.sliding_window, q.context) == (True, False, 0, 131072)


def test_hf_format_configs_of_older_presets_give_the_same_counts():
    """DeepSeek-V3, Mixtral and Llama 3 in config.json form equal the hand-written presets."""
    v3 = {"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
          "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "n_routed_experts": 256,
          "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "kv_lora_rank": 512,
          "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
          "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False}
    assert load_hf_config(v3).params_total == model_specs.get_model("deepseek-v3").params_total == 671_026_419_200
    mixtral = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
               "vocab_size": 32000, "max_position_embeddings": 32768}
    assert load_hf_config(mixtral).params_total == model_specs.get_model("mixtral-8x7b").params_total
    assert load_hf_config(mixtral).params_active == model_specs.get_model("mixtral-8x7b").params_active


def test_folder_text_and_params_from_hf_config(tmp_path):
    cfg = ROWS["qwen2.5-7b"]["config"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_hf_config(tmp_path).params_total == 7_615_616_512
    assert load_hf_config(json.dumps(cfg)).params_total == 7_615_616_512
    out = params_from_hf_config(tmp_path / "config.json")
    assert out["params_total"] == out["params_active"] == out["spec"]["params_total"] == 7_615_616_512


@pytest.mark.parametrize(("source", "message"), [
    ({"model_type": "gpt_neox", "hidden_size": 8}, "not supported; supported: llama, mistral"),
    ({"model_type": "bert", "hidden_size": 768}, "not a decoder language model"),
    ({"model_type": "t5", "d_model": 512}, "not a decoder language model"),
    ("{not json", "not valid JSON"),
    ({"hidden_size": 8}, "no model_type"),
    ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}, "missing num_hidden_layers, intermediate_size"),
    ({"model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "intermediate_size": 8, "vocab_size": 9, "max_position_embeddings": 8}, "missing num_experts"),
    ({"model_type": "llama", "hidden_size": 1e9, "num_hidden_layers": 2, "num_attention_heads": 4,
      "intermediate_size": 8, "vocab_size": 9, "max_position_embeddings": 8}, "hidden_size"),
    ({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 0, "num_attention_heads": 4,
      "intermediate_size": 8, "vocab_size": 9, "max_position_embeddings": 8}, "num_hidden_layers"),
    ({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 3, "intermediate_size": 8, "vocab_size": 9, "max_position_embeddings": 8}, "must divide"),
])
def test_bad_configs_are_one_line(source, message):
    with pytest.raises(ValidationError) as info:
        load_hf_config(source)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_bad_paths_are_one_line(tmp_path):
    with pytest.raises(ValidationError, match="holds no config.json"):
        load_hf_config(tmp_path)
    big = tmp_path / "config.json"
    big.write_text('{"model_type": "llama", "pad": "' + "x" * 1_000_001 + '"}')
    with pytest.raises(ValidationError, match="at most 1,000,000"):
        load_hf_config(big)
    with pytest.raises(ValidationError, match="cannot read"):
        load_hf_config(tmp_path / "missing.json")


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=5), st.lists(st.integers(-2, 5), max_size=3))
_keys = st.sampled_from(["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                         "intermediate_size", "vocab_size", "max_position_embeddings", "head_dim",
                         "tie_word_embeddings", "attention_bias", "sliding_window", "num_experts",
                         "num_experts_per_tok", "moe_intermediate_size", "mlp_only_layers", "layer_types",
                         "partial_rotary_factor", "q_lora_rank", "kv_lora_rank", "first_k_dense_replace"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mtype=st.sampled_from(SUPPORTED_MODEL_TYPES), seed=st.integers(0, 10**6),
       changes=st.dictionaries(_keys, _values, max_size=3))
def test_parser_gives_a_spec_or_one_validation_line(mtype, seed, changes):
    """Any corruption of a valid config gives an exact spec or a one-line ValidationError, never a crash."""
    cfg = random_config(mtype, random.Random(seed))
    cfg.update(changes)
    try:
        spec = load_hf_config(cfg)
    except ValidationError as exc:
        assert "\n" not in str(exc)
        return
    assert spec.params_total >= spec.params_active > 0
    assert spec.params_total == load_hf_config(json.dumps(read_hf_config(cfg))).params_total


def test_saved_workspace_model_is_found_by_lookups_scenarios_and_plans(tmp_path):
    from engine.readiness.assess import assess
    from engine.readiness.profile import example_profile, with_changes

    with pytest.raises(ValidationError, match="is a catalog model"):
        model_specs.save_model("qwen2.5-7b", ROWS["qwen2.5-7b"]["config"])
    with pytest.raises(ValidationError, match="not a decoder language model"):
        model_specs.save_model("enc", {"model_type": "bert"})
    spec = model_specs.save_model("Our Qwen", json.dumps(ROWS["qwen2.5-0.5b"]["config"]))
    assert spec.id == "our-qwen" and "our-qwen" in model_specs.model_ids()
    assert model_specs.get_model("our-qwen").params_total == 494_032_768
    with pytest.raises(ValidationError, match="unknown model 'nope'"):
        model_specs.get_model("nope")
    profile = with_changes(example_profile(), serving_model="our-qwen", serving_gpu="l4",
                           training=[{"model": "our-qwen", "method": "lora", "tokens": 10e6, "gpu": "l4", "gpus": 1}])
    result = assess(profile, samples=50).to_dict()
    status = {area["id"]: area["status"] for area in result["areas"]}
    assert status["training"] == status["serving"] == "ready"
    assert result["assumptions"]["serving"]["model"] == result["training"][0]["model"] == "our-qwen"
    assert result["training"][0]["gpu_hours"] > 0


def test_moe_layer_placement_per_pipeline_stage():
    """decoder_sparse_step 2 and mlp_only_layers [0, 5]: MoE layers are 1, 3, 7 of 0..7."""
    cfg = {"model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96, "vocab_size": 100,
           "max_position_embeddings": 512, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
           "decoder_sparse_step": 2, "mlp_only_layers": [0, 5]}
    spec = load_hf_config(cfg)
    assert spec.n_dense_layers == 5
    assert [spec.dense_layers_in(a, a + 2) for a in (0, 2, 4, 6)] == [1, 1, 2, 1]
    deepseek = model_specs.get_model("deepseek-v3")
    assert [deepseek.dense_layers_in(a, a + 2) for a in (0, 2, 4)] == [2, 1, 0]


def test_demo_mode_refuses_saving_a_model(monkeypatch):
    from engine.access import DEMO_ENV

    monkeypatch.setenv(DEMO_ENV, "1")
    with pytest.raises(ValidationError, match="read-only demo"):
        model_specs.save_model("demo-qwen", ROWS["qwen2.5-0.5b"]["config"])
    assert "demo-qwen" not in model_specs.model_ids()
