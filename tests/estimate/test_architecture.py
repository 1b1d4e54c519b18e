"""ModelSpec: parameter counts, FLOPs per token and KV-cache sizes derived from the architecture."""

from __future__ import annotations

import dataclasses

import pytest

from engine.estimate.models import get_model
from engine.errors import ValidationError
from engine.estimate.architecture import ModelSpec
from engine.estimate.memory import MemoryInput, estimate_memory
from engine.estimate.training import mfu_from_throughput


def palm_540b() -> ModelSpec:
    """PaLM 540B (Chowdhery et al. 2022, Table 1): 118 layers, d_model 18432, 48 heads of 256,
    multi-query attention, SwiGLU with d_ff = 4·d_model, 256k vocabulary shared with the output,
    no biases, 2048-token sequences. (Parallel attention/MLP blocks do not change the count.)"""
    return ModelSpec(
        n_layers=118, d_model=18432, n_heads=48, n_kv_heads=1, head_dim=256, d_ff=4 * 18432,
        vocab_size=256_000, ffn="swiglu", tied_embeddings=True, position="rope", norm="rmsnorm",
        bias=False, context=2048, id="palm-540b",
    )


def gpt_style(n_layers=2, d_model=256, n_heads=4, vocab=1000, context=128, **kw) -> ModelSpec:
    return ModelSpec(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads, d_ff=4 * d_model,
        vocab_size=vocab, ffn="gelu", tied_embeddings=True, position="learned", norm="layernorm",
        bias=True, dropout=True, context=context, **kw,
    )


# ---- parameter counts ----------------------------------------------------------------------------

def test_palm_540b_parameter_count():
    """PaLM reports 540.35B parameters (Chowdhery et al. 2022, Table 1 / App. B)."""
    assert palm_540b().params_total == pytest.approx(540.35e9, rel=2e-4)


def test_palm_mfu_through_the_model_spec():
    """PaLM App. B: 540B on 6144 TPU v4 chips (275 TFLOP/s bf16) at 238.3k tokens/s is 46.2% MFU,
    with model FLOPs per token 6·N + 12·L·H·Q·T. Here the FLOPs come from the spec itself."""
    spec = palm_540b()
    per_token = spec.training_flops_per_token(2048)
    assert per_token == pytest.approx(6 * 540.35e9 + 12 * 118 * 48 * 256 * 2048, rel=2e-4)
    assert mfu_from_throughput(per_token, 238.3e3, 6144, 275e12) == pytest.approx(0.462, abs=1e-3)


def test_palm_mfu_from_paper_numbers():
    """The brief's literal PaLM figure (Chowdhery et al. 2022, App. B): MFU = 46.2%."""
    mfu = mfu_from_throughput(
        flops_per_token=6 * 540.35e9 + 12 * 118 * 48 * 256 * 2048, tokens_per_s=238.3e3,
        n_chips=6144, peak_flops=275e12,
    )
    assert mfu == pytest.approx(0.462, abs=0.001)


def test_gpt2_small_by_hand():
    """GPT-2 small: wte 50257·768 + wpe 1024·768 + 12 blocks of (12·d² + 13·d) + final LN 2·d."""
    d = 768
    block = 12 * d * d + 13 * d  # qkv 3d²+3d, proj d²+d, fc 4d²+4d, proj 4d²+d, two LNs 4d
    expected = 50257 * d + 1024 * d + 12 * block + 2 * d
    spec = get_model("gpt2")
    assert expected == 124_439_808
    assert spec.params_total == expected
    assert spec.params_embedding == 50257 * d + 1024 * d
    assert spec.params_head == 0  # tied
    # the LM head (tied to wte) still does a matmul; positions, embedding lookups and the 25 LayerNorms
    # (weight + bias, 2·d each: two per block and the final one) do not
    assert spec.params_matmul_active == spec.params_total - 1024 * d - (12 * 2 + 1) * 2 * d
    assert spec.params_matmul_active == 123_614_976


def test_matmul_params_exclude_norms():
    """N in 6·N·T counts only weights that multiply: per layer the matrices (and linear biases), not
    the norm weights; the LM head (tied or not) is one V·d matrix. Llama 2 7B: 32·(4·d² + 3·d·f) + V·d."""
    d, f, layers, vocab = 4096, 11008, 32, 32000
    spec = get_model("llama-2-7b")
    assert spec.params_matmul_active == layers * (4 * d * d + 3 * d * f) + vocab * d == 6_607_077_376
    # the norms are the whole difference to params_total besides the input embedding
    assert spec.params_total - spec.params_matmul_active == vocab * d + layers * 2 * d + d


def test_deepseek_v3_matmul_params_exclude_latent_norms():
    """MLA adds two RMSNorms per layer inside attention, on the q latent (q_lora_rank = 1536) and the
    KV latent (kv_lora_rank = 512): they are no matmul weights either. DeepSeek-V3: 61 layers, d = 7168,
    untied 129,280-token vocabulary, so N = active − input embedding − final norm − 61·(2·7168 + 1536 + 512)."""
    spec = get_model("deepseek-v3")
    d, vocab, layers = 7168, 129_280, 61
    expected = spec.params_active - vocab * d - d - layers * (2 * d + 1536 + 512)
    assert expected == 37_552_297_472 - 926_679_040 - 7_168 - 999_424 == 36_624_611_840
    assert spec.params_matmul_active == expected


def test_router_bias_adds_one_parameter_per_expert():
    """DeepSeek-V3's auxiliary-loss-free load balancing keeps a bias per routed expert
    (e_score_correction_bias, an nn.Parameter of the reference MoEGate): 256 per MoE layer, 58 MoE
    layers (61 minus 3 dense) → 14,848 parameters, counted in the total and the active count."""
    spec = get_model("deepseek-v3")
    assert spec.router_bias is True
    plain = dataclasses.replace(spec, router_bias=False)
    assert spec.moe_params(active=False) - plain.moe_params(active=False) == 256
    assert spec.moe_params(active=True) - plain.moe_params(active=True) == 256
    assert spec.params_total - plain.params_total == 58 * 256 == 14_848
    assert spec.params_active - plain.params_active == 14_848
    # models without it are unchanged: Mixtral's router is a bare d·E matrix
    assert get_model("mixtral-8x7b").router_bias is False


def test_llama_2_7b_by_hand():
    """Llama 2 7B: 32 layers of 4·d² attention + 3·d·f SwiGLU + 2 RMSNorm, untied 32000-vocab head."""
    d, f, layers, vocab = 4096, 11008, 32, 32000
    expected = 2 * vocab * d + layers * (4 * d * d + 3 * d * f + 2 * d) + d
    assert get_model("llama-2-7b").params_total == expected == 6_738_415_616


def test_gqa_shrinks_attention_params():
    full = get_model("llama-2-7b")
    gqa = dataclasses.replace(full, n_kv_heads=8)
    d, hd = 4096, 128
    assert full.attention_params() - gqa.attention_params() == 2 * d * (32 - 8) * hd
    assert gqa.summary()["attention"] == "gqa"
    assert full.summary()["attention"] == "mha"
    assert dataclasses.replace(full, n_kv_heads=1).summary()["attention"] == "mqa"
    assert get_model("deepseek-v3").summary()["attention"] == "mla"


def test_tied_vs_untied():
    tied = gpt_style()
    untied = dataclasses.replace(tied, tied_embeddings=False)
    assert untied.params_total - tied.params_total == 1000 * 256
    assert untied.params_head == 1000 * 256
    assert untied.params_matmul_active == tied.params_matmul_active


def test_moe_counts_by_hand():
    """Mixtral: 8 SwiGLU experts per layer, 2 active, plus a router d·E per layer."""
    spec = get_model("mixtral-8x7b")
    d, f, layers = 4096, 14336, 32
    expert = 3 * d * f
    assert spec.params_total - spec.params_active == layers * (8 - 2) * expert
    assert spec.expert_params_per_layer() == 8 * expert
    assert spec.moe_params(active=True) == 2 * expert + d * 8


def test_summary_is_json_ready():
    import json

    for model_id in ("gpt2", "deepseek-v3", "mixtral-8x7b"):
        row = get_model(model_id).summary()
        json.dumps(row)
        assert row["params_total"] == get_model(model_id).params_total


# ---- FLOPs ---------------------------------------------------------------------------------------

def test_training_flops_per_token_decomposition():
    spec = get_model("llama-2-7b")
    attn = spec.attention_flops_forward_per_token(4096)
    assert attn == 2 * 32 * 32 * (128 + 128) * 4096
    assert spec.training_flops_per_token(4096) == 6 * spec.params_matmul_active + 3 * attn


def test_moe_flops_use_active_params():
    spec = get_model("mixtral-8x7b")
    per_token = spec.training_flops_per_token(4096) - 3 * spec.attention_flops_forward_per_token(4096)
    assert per_token == 6 * spec.params_matmul_active
    assert spec.params_matmul_active < spec.params_active < spec.params_total


def test_sliding_window_caps_attention_flops():
    spec = get_model("mistral-7b")
    assert spec.attention_flops_forward_per_token(8192) == spec.attention_flops_forward_per_token(4096)
    assert spec.attention_flops_forward_per_token(2048) < spec.attention_flops_forward_per_token(4096)


def test_llama_3_405b_training_flops():
    """Dubey et al. 2024 (The Llama 3 Herd of Models), Sec. 3.2.1: 405B trained on 15.6T tokens with
    3.8e25 FLOPs, computed as 6·N·D."""
    spec = get_model("llama-3.1-405b")
    tokens = 15.6e12
    assert 6 * spec.params_total * tokens == pytest.approx(3.8e25, rel=0.01)
    dense = spec.training_flops_per_token(8192) - 3 * spec.attention_flops_forward_per_token(8192)
    assert dense * tokens == pytest.approx(3.8e25, rel=0.015)


# ---- KV cache ------------------------------------------------------------------------------------

def test_llama_2_7b_kv_cache_half_a_megabyte_per_token():
    """2 (K and V) · 32 layers · 32 heads · 128 · 2 bytes = 524,288 bytes per token in fp16."""
    assert get_model("llama-2-7b").kv_cache_bytes_per_token(2) == 524_288
    est = estimate_memory(MemoryInput(model="llama-2-7b", mode="infer", batch=1, seq_len=1, dtype="fp16"))
    assert est.kv_cache_bytes == 524_288


def test_llama_3_8b_gqa_kv_cache():
    """Llama 3 8B keeps 8 KV heads (GQA, Ainslie et al. 2023): 2·32·8·128·2 = 131,072 bytes."""
    assert get_model("llama-3-8b").kv_cache_bytes_per_token(2) == 131_072


def test_llama_2_70b_gqa_kv_cache():
    """Llama 2 70B (Touvron et al. 2023, GQA with 8 KV heads): 2·80·8·128·2 = 327,680 bytes
    (320 KiB) per token in bf16, 1/8 of the 2.5 MiB an MHA model of that shape would need."""
    spec = get_model("llama-2-70b")
    assert spec.kv_cache_bytes_per_token(2) == 327_680
    assert dataclasses.replace(spec, n_kv_heads=64).kv_cache_bytes_per_token(2) == 8 * 327_680


def test_deepseek_v3_mla_kv_cache():
    """DeepSeek-V2 report Sec. 2.1.2: MLA caches (d_c + d_h^R)·l elements: 61·(512 + 64)·2 bytes."""
    assert get_model("deepseek-v3").kv_cache_bytes_per_token(2) == 61 * (512 + 64) * 2 == 70_272


def test_kv_fraction_per_rank():
    """Tensor parallelism splits KV heads over ranks and replicates them when ranks outnumber them:
    each rank holds ceil(H_kv/tp)/H_kv of the cache (Megatron-LM, vLLM). MLA's one latent is needed by
    every head, so every rank holds all of it."""
    llama = get_model("llama-3-70b")  # 64 heads, 8 KV heads
    assert [llama.kv_fraction_per_rank(t) for t in (1, 2, 4, 8)] == [1.0, 1 / 2, 1 / 4, 1 / 8]
    assert llama.kv_fraction_per_rank(16) == llama.kv_fraction_per_rank(64) == 1 / 8  # not 1/16, 1/64
    mha = get_model("llama-2-7b")  # 32 KV heads: sharded all the way
    assert mha.kv_fraction_per_rank(32) == 1 / 32
    mqa = dataclasses.replace(mha, n_kv_heads=1)
    assert mqa.kv_fraction_per_rank(8) == 1.0
    gqa4 = dataclasses.replace(mha, n_kv_heads=4)
    assert gqa4.kv_fraction_per_rank(8) == 1 / 4
    mla = get_model("deepseek-v3")
    assert [mla.kv_fraction_per_rank(t) for t in (1, 8, 128)] == [1.0, 1.0, 1.0]


def test_mistral_sliding_window_kv():
    spec = get_model("mistral-7b")
    assert spec.cached_positions(8192) == spec.cached_positions(4096) == 4096
    assert spec.cached_positions(100) == 100
    kv = [estimate_memory(MemoryInput(model="mistral-7b", mode="infer", seq_len=s)).kv_cache_bytes
          for s in (4096, 8192)]
    assert kv[0] == kv[1] > 0


# ---- validation ------------------------------------------------------------------------------

BASE = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=128, vocab_size=100)


@pytest.mark.parametrize("override", [
    dict(n_layers=0), dict(n_layers=-1), dict(d_model=0), dict(n_heads=0), dict(vocab_size=0),
    dict(n_layers=2.5), dict(n_layers=float("nan")), dict(d_model=float("inf")), dict(n_layers=10**400),
    dict(n_layers="abc"), dict(n_layers=None), dict(n_layers=True), dict(n_layers=[2]), dict(d_model=10**8),
    dict(n_kv_heads=3), dict(n_kv_heads=8), dict(d_model=65), dict(ffn="relu"), dict(position="alibi"),
    dict(norm="batchnorm"), dict(ffn=None), dict(head_dim=-1), dict(sliding_window=-5),
    dict(n_experts=4, top_k=0, d_ff_expert=64), dict(n_experts=4, top_k=5, d_ff_expert=64),
    dict(n_experts=4, top_k=2), dict(n_experts=4, top_k=2, d_ff_expert=64, first_dense_layers=3),
    dict(top_k=2), dict(n_shared_experts=1), dict(kv_lora_rank=16),
])
def test_bad_specs_raise_validation_error(override):
    with pytest.raises(ValidationError) as info:
        ModelSpec(**{**BASE, **override})
    assert "\n" not in str(info.value)


def test_numeric_strings_are_normalised():
    """require_number accepts numeric strings; the spec must then hold numbers, not strings."""
    spec = ModelSpec(**{**BASE, "n_layers": "2", "d_model": 64.0})
    assert spec.params_total == ModelSpec(**BASE).params_total
    assert isinstance(spec.n_layers, int) and isinstance(spec.d_model, int)


def test_head_dim_override_allows_indivisible_d_model():
    spec = ModelSpec(**{**BASE, "d_model": 65, "head_dim": 16})
    assert spec.head_dim == 16
    assert spec.attention_params() == 65 * 64 * 4


def test_specs_are_frozen():
    spec = ModelSpec(**BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_layers = 3  # type: ignore[misc]
