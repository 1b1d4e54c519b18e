"""Memory per GPU: ZeRO model states, Korthikanti activations, pipeline stages, inference weights."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import get_gpu, get_model, models
from engine.errors import ValidationError
from engine.estimate.architecture import ModelSpec
from engine.estimate.dtypes import QUANTIZED, WEIGHT_DTYPES, bytes_per_weight
from engine.estimate.memory import MemoryInput, _output_layer_activation_bytes, activation_bytes_per_layer, estimate_memory
from engine.estimate.serving import _weight_bytes


def mem(model="llama-2-7b", **kw):
    return estimate_memory(MemoryInput(model=model, **kw))


def model_states(est) -> float:
    return est.weights_bytes + est.gradients_bytes + est.optimizer_bytes


def gpt(n_layers=2, h=1024, a=16, vocab=1000, context=2048, **kw) -> ModelSpec:
    """A GPT-style layer as Korthikanti et al. count it: GELU MLP of 4h, dropout, LayerNorm, biases."""
    return ModelSpec(
        n_layers=n_layers, d_model=h, n_heads=a, n_kv_heads=a, d_ff=4 * h, vocab_size=vocab, ffn="gelu",
        dropout=True, norm="layernorm", bias=True, position="learned", context=context, **kw,
    )


# ---- ZeRO (Rajbhandari et al. 2020) ----------------------------------------------------------------

@pytest.mark.parametrize("zero, per_param", [(0, 16), (1, 4 + 12 / 64), (2, 2 + 14 / 64), (3, 16 / 64)])
@pytest.mark.parametrize("model_id", ["llama-2-7b", "gpt2", "mixtral-8x7b"])
def test_zero_stage_bytes_per_param(model_id, zero, per_param):
    """Rajbhandari et al. 2020, Sec. 3.1 / Fig. 1: (2 + 2 + K)·Ψ with K = 12 for mixed-precision Adam;
    stage 1 divides K by N_d, stage 2 also the gradients, stage 3 everything (N_d = 64)."""
    est = mem(model_id, mode="train", dtype="bf16", optimizer="adamw", dp=64, zero=zero)
    assert model_states(est) / est.params_per_gpu == pytest.approx(per_param, rel=1e-12)
    assert est.gpus == 64


def test_zero_figure_1_absolute():
    """ZeRO Fig. 1: Ψ = 7.5B, K = 12, N_d = 64 → 120 GB, 31.4 GB, 16.6 GB, 1.9 GB per device.
    A 36-layer, d=4096 GPT with a 64k vocabulary has 7.51B parameters."""
    spec = gpt(n_layers=36, h=4096, a=32, vocab=64000)
    spec = dataclasses.replace(spec, position="rope", dropout=False, tied_embeddings=True)
    assert spec.params_total == pytest.approx(7.5e9, rel=2e-3)
    for zero, gb in enumerate((120, 31.4, 16.6, 1.9)):
        est = mem(spec, dp=64, zero=zero)
        assert model_states(est) / 1e9 == pytest.approx(gb, rel=0.015)


def test_fp32_training_is_16_bytes_per_param():
    """Pure fp32 training with Adam: 4 (weights) + 4 (grads) + 8 (momentum, variance), no master copy."""
    est = mem(dtype="fp32")
    assert est.weights_bytes / est.params_per_gpu == 4
    assert est.gradients_bytes / est.params_per_gpu == 4
    assert est.optimizer_bytes / est.params_per_gpu == 8
    assert "fp32" in est.bytes_per_param_convention


@pytest.mark.parametrize("optimizer, k", [("adamw", 12), ("adamw-8bit", 6), ("sgd", 8)])
def test_optimizer_state_bytes(optimizer, k):
    est = mem(optimizer=optimizer)
    assert est.optimizer_bytes / est.params_per_gpu == k


def test_whole_model_on_one_gpu():
    est = mem("llama-2-7b")
    assert est.params_per_gpu == get_model("llama-2-7b").params_total
    assert est.weights_bytes == 2 * est.params_per_gpu
    assert est.kv_cache_bytes == 0 and est.mode == "train"


# ---- activations (Korthikanti et al. 2022) -------------------------------------------------------

korthikanti_cases = st.tuples(
    st.sampled_from([128, 512, 1024, 2048, 4096, 8192]),  # s
    st.integers(1, 16),  # b
    st.sampled_from([32, 64, 128, 256]),  # head dim
    st.integers(1, 96),  # a (heads)
    st.sampled_from([1, 2, 4, 8, 16]),  # t
)


@settings(max_examples=150, deadline=None)
@given(korthikanti_cases)
def test_korthikanti_equations(case):
    """Korthikanti et al. 2022, activation bytes per layer / (s·b·h):
    eq. 1: 34 + 5as/h; eq. 2 (tensor parallel): 10 + 24/t + 5as/(ht); eq. 3 (+ sequence parallel):
    (34 + 5as/h)/t; eq. 5 (selective recompute + sp): 34/t; Sec. 4.3 (full recompute): 2, or 2/t with sp."""
    s, b, head_dim, a, t = case
    h = a * head_dim
    spec = gpt(h=h, a=a, context=s)
    unit = s * b * h

    def per(tp=1, **kw):
        return activation_bytes_per_layer(spec, b=b, s=s, tp=tp, **kw) / unit

    assert per() == pytest.approx(34 + 5 * a * s / h, rel=1e-12)
    assert per(tp=t, sp=False) == pytest.approx(10 + 24 / t + 5 * a * s / (h * t), rel=1e-12)
    assert per(tp=t, sp=True) == pytest.approx((34 + 5 * a * s / h) / t, rel=1e-12)
    assert per(tp=t, sp=True, recompute="selective") == pytest.approx(34 / t, rel=1e-12)
    assert per(tp=t, sp=True, recompute="full") == pytest.approx(2 / t, rel=1e-12)
    assert per(tp=t, sp=False, recompute="full") == pytest.approx(2, rel=1e-12)


def test_korthikanti_gpt3_table():
    """Korthikanti et al. 2022, Table 2 setting for GPT-3 175B (a=96, h=12288, s=2048, t=8, b=1):
    selective recompute + sequence parallelism keeps 34·s·b·h/t bytes per layer."""
    spec = get_model("gpt3-175b")
    s, b, h, t = 2048, 1, 12288, 8
    assert activation_bytes_per_layer(spec, b=b, s=s, tp=t, sp=True, recompute="selective") == 34 * s * b * h / t
    no_recompute = activation_bytes_per_layer(spec, b=b, s=s, tp=t, sp=True)
    assert no_recompute == pytest.approx(s * b * h / t * (34 + 5 * 96 * s / h))


def test_estimate_memory_uses_korthikanti_per_layer():
    spec = gpt(n_layers=4, h=1024, a=16, vocab=5000, context=1024)
    est = mem(spec, batch=2, seq_len=1024)
    per_layer = activation_bytes_per_layer(spec, b=2, s=1024)
    out = _output_layer_activation_bytes(spec, 2, 1024, 1, 2.0)
    assert est.activations_bytes == pytest.approx(4 * per_layer + out)
    assert out == 4 * 1024 * 2 * 1024 * (1 + 5000 / 1024)


def test_recompute_ordering_and_sequence_parallel():
    kw = dict(model="llama-2-7b", batch=1, seq_len=4096, tp=8)
    acts = {r: mem(recompute=r, **kw).activations_bytes for r in ("none", "selective", "full")}
    assert acts["full"] < acts["selective"] < acts["none"]
    assert mem(**kw).activations_bytes < mem(sequence_parallel=False, **kw).activations_bytes
    # at tp = 1 sequence parallelism is meaningless
    assert mem(sequence_parallel=False).activations_bytes == mem().activations_bytes


def test_activations_scale_with_batch():
    one, four = mem(batch=1, recompute="full"), mem(batch=4, recompute="full")
    assert four.activations_bytes == pytest.approx(4 * one.activations_bytes)


# ---- pipeline parallelism ----------------------------------------------------------------------

@pytest.mark.parametrize("model_id", ["gpt2", "llama-2-7b", "gpt3-175b"])
def test_pipeline_first_stage_holds_all_layers_of_activations(model_id):
    """Korthikanti et al. 2022, Sec. 4.2.3: under 1F1B the first stage keeps p micro-batches in flight,
    so it stores activations for L/p · p = L layers, and the output layer lives on the last stage."""
    spec = get_model(model_id)
    one = mem(model_id, pp=1)
    four = mem(model_id, pp=4)
    out = _output_layer_activation_bytes(spec, 1, spec.context, 1, 2.0)
    assert four.pipeline_stage == 0
    assert four.activations_bytes == pytest.approx(one.activations_bytes - out, rel=1e-12)
    assert four.gpus == 4


@pytest.mark.parametrize("model_id", ["llama-2-7b", "gpt3-175b", "llama-3.1-405b"])
def test_pipeline_params_shrink_about_1_over_pp(model_id):
    spec = get_model(model_id)
    one = mem(model_id).params_per_gpu
    for pp in (2, 4, 8):
        if spec.n_layers % pp:
            continue
        est = mem(model_id, pp=pp)
        layer = spec.attention_params() + spec.mlp_params(spec.d_ff) + 2 * spec.norm_params()
        # the most loaded stage is the first: its L/p layers, the embedding, and p micro-batches
        assert est.pipeline_stage == 0
        assert est.params_per_gpu == spec.n_layers // pp * layer + spec.params_embedding
        assert abs(est.params_per_gpu - one / pp) < spec.params_embedding


def test_fewer_microbatches_less_activation_memory():
    assert mem(pp=4, microbatches=1).activations_bytes < mem(pp=4).activations_bytes


def test_tied_embeddings_copied_to_last_stage():
    spec = get_model("gpt2")
    vocab = spec.vocab_size * spec.d_model
    assert mem("gpt2", pp=1).params_per_gpu == spec.params_total
    # with pp = 12 each stage has one layer; the first holds wte + wpe, the last its own copy of wte
    est = mem("gpt2", pp=12, recompute="full")
    layer = spec.attention_params() + spec.mlp_params(spec.d_ff) + 2 * spec.norm_params()
    assert est.params_per_gpu in (layer + vocab + spec.context * spec.d_model, layer + vocab + spec.norm_params())


# ---- tensor parallelism --------------------------------------------------------------------------

def test_tensor_parallel_shards_matrices():
    spec = get_model("llama-2-70b")
    one, eight = mem("llama-2-70b", mode="infer"), mem("llama-2-70b", mode="infer", tp=8)
    norms = spec.n_layers * 2 * spec.norm_params() + spec.norm_params()
    assert eight.params_per_gpu == pytest.approx((spec.params_total - norms) / 8 + norms)
    assert eight.weights_bytes == pytest.approx(one.weights_bytes / 8, rel=1e-3)


def test_kv_cache_sharded_over_kv_heads():
    full = mem("llama-3-8b", mode="infer", batch=4, seq_len=8192).kv_cache_bytes
    assert full == 4 * 8192 * 131_072
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=8192, tp=8).kv_cache_bytes == full / 8
    # tp beyond the 8 KV heads replicates them: still one KV head per GPU
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=8192, tp=16).kv_cache_bytes == full / 8
    # MLA's latent is shared by all heads and replicated on every rank
    mla = mem("deepseek-v3", mode="infer", seq_len=4096).kv_cache_bytes
    assert mem("deepseek-v3", mode="infer", seq_len=4096, tp=8).kv_cache_bytes == mla == 4096 * 70_272


def test_kv_dtype():
    bf16 = mem("llama-3-8b", mode="infer", seq_len=1000).kv_cache_bytes
    assert mem("llama-3-8b", mode="infer", seq_len=1000, kv_dtype="fp8").kv_cache_bytes == bf16 / 2
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="fp32").kv_cache_bytes == bf16 * 2
    # weight-only int4 keeps a bf16 cache unless told otherwise
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="int4").kv_cache_bytes == bf16


# ---- inference weights -------------------------------------------------------------------------

def test_int4_bytes_per_weight():
    """GPTQ/AWQ int4 with one fp16 scale per 128-weight group: 0.5 + 2/128 bytes per weight."""
    assert bytes_per_weight("int4") == 0.5 + 2 / 128
    assert [bytes_per_weight(d) for d in ("fp32", "bf16", "fp16", "fp8", "int8")] == [4, 2, 2, 1, 1]


@pytest.mark.parametrize("model_id", ["llama-2-7b", "gpt2", "mixtral-8x7b"])
def test_int4_keeps_embeddings_and_head_in_bf16(model_id):
    spec = get_model(model_id)
    est = mem(model_id, mode="infer", dtype="int4")
    embed = spec.params_embedding + spec.params_head
    assert est.weights_bytes == pytest.approx((spec.params_total - embed) * (0.5 + 2 / 128) + embed * 2, rel=1e-12)
    assert "bf16" in est.bytes_per_param_convention


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("model_id", sorted(models()))
def test_memory_and_serving_weights_agree(model_id, dtype):
    """memory._inference_weight_bytes and serving._weight_bytes count the same bytes at pp = tp = 1."""
    est = mem(model_id, mode="infer", dtype=dtype, seq_len=16)
    assert est.weights_bytes == pytest.approx(_weight_bytes(get_model(model_id), dtype), rel=1e-12)
    if dtype not in QUANTIZED:
        assert est.weights_bytes == get_model(model_id).params_total * bytes_per_weight(dtype)


def test_llama_2_7b_fp16_inference_fits_24gb():
    """The classic: 7B fp16 weights are 13.5 GB, which fit a 24 GB card but not with a 32 × 4k cache."""
    est = mem("llama-2-7b", mode="infer", dtype="fp16", seq_len=4096, gpu="l4")
    assert est.weights_bytes == pytest.approx(13.48e9, rel=1e-3)
    assert est.fits is True
    assert est.headroom_bytes == pytest.approx(est.gpu_memory_bytes - est.total_bytes_per_gpu - est.overhead_bytes)
    big = mem("llama-2-7b", mode="infer", dtype="fp16", seq_len=4096, batch=32, gpu="l4")
    assert big.fits is False and big.headroom_bytes < 0


def test_training_7b_needs_sharding_on_80gb():
    """16 bytes/param × 6.7B = 108 GB of model states: no single 80 GB GPU without ZeRO."""
    assert mem("llama-2-7b", gpu="a100-80gb", recompute="full").fits is False
    assert mem("llama-2-7b", gpu="a100-80gb", recompute="full", dp=8, zero=3).fits is True


def test_no_gpu_means_fit_unknown():
    est = mem()
    assert est.fits is None and est.headroom_bytes is None and est.gpu is None and est.gpu_memory_bytes is None


def test_total_is_sum_of_components():
    for kw in (dict(), dict(mode="infer", batch=8), dict(tp=4, pp=2, dp=4, zero=1)):
        est = mem(**kw)
        parts = est.weights_bytes + est.gradients_bytes + est.optimizer_bytes + est.activations_bytes + est.kv_cache_bytes
        assert est.total_bytes_per_gpu == pytest.approx(parts)


def test_overhead():
    est = mem(overhead_gb=3, gpu="h100-sxm")
    assert est.overhead_bytes == 3e9
    assert est.headroom_bytes == pytest.approx(get_gpu("h100-sxm").memory_bytes - est.total_bytes_per_gpu - 3e9)


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(model="nope"), dict(model=None), dict(mode="serve"), dict(batch=0), dict(batch=-1), dict(batch=1.5),
    dict(batch=float("nan")), dict(seq_len=0), dict(seq_len=float("inf")), dict(dtype="int2"),
    dict(dtype="int4"), dict(dtype="int8"), dict(kv_dtype="int4"), dict(dp=0), dict(zero=4), dict(zero=-1),
    dict(tp=0), dict(tp=64), dict(pp=0), dict(pp=33), dict(recompute="all"), dict(optimizer="lion"),
    dict(microbatches=0), dict(gpu="tpu"), dict(overhead_gb=-1), dict(overhead_gb=float("nan")),
    dict(batch="abc"), dict(tp=10**400),
])
def test_bad_memory_input(kw):
    base = dict(model="llama-2-7b")
    base.update(kw)
    with pytest.raises(ValidationError) as info:
        estimate_memory(MemoryInput(**base))
    assert "\n" not in str(info.value)


def test_quantized_dtypes_are_inference_only():
    for dtype in ("int8", "int4"):
        assert mem(mode="infer", dtype=dtype).weights_bytes > 0


def test_pipeline_degree_is_capped():
    """pp loops over stages; a custom model with millions of layers must not be able to hang it."""
    from engine.errors import ValidationError
    from engine.estimate.architecture import ModelSpec
    from engine.estimate.memory import MemoryInput, estimate_memory

    deep = ModelSpec(n_layers=100_000, d_model=64, n_heads=4, n_kv_heads=4, d_ff=256, vocab_size=100)
    with pytest.raises(ValidationError, match="pp must be <= 1024"):
        estimate_memory(MemoryInput(model=deep, pp=5000, seq_len=16))
    assert estimate_memory(MemoryInput(model=deep, pp=1024, seq_len=16)).total_bytes_per_gpu > 0
