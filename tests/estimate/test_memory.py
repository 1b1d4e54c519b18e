"""Memory per GPU: ZeRO model states, Korthikanti activations, pipeline stages, inference weights."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import get_gpu
from engine.estimate.models import get_model, models
from engine.errors import ValidationError
from engine.estimate.architecture import ModelSpec
from engine.estimate.dtypes import QUANTIZED, WEIGHT_DTYPES, bytes_per_weight
from engine.estimate.memory import (
    MemoryInput, _output_layer_activation_bytes, activation_bytes_per_layer, default_kv_dtype, estimate_memory,
    inference_activation_bytes,
)
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
    """Korthikanti et al. 2022 (eager attention, which stores the a·s² scores: the paper's setting),
    activation bytes per layer / (s·b·h):
    eq. 1: 34 + 5as/h; eq. 2 (tensor parallel): 10 + 24/t + 5as/(ht); eq. 3 (+ sequence parallel):
    (34 + 5as/h)/t; eq. 5 (selective recompute + sp): 34/t; Sec. 4.3 (full recompute): 2, or 2/t with sp."""
    s, b, head_dim, a, t = case
    h = a * head_dim
    spec = gpt(h=h, a=a, context=s)
    unit = s * b * h

    def per(tp=1, **kw):
        return activation_bytes_per_layer(spec, b=b, s=s, tp=tp, attention="eager", **kw) / unit

    assert per() == pytest.approx(34 + 5 * a * s / h, rel=1e-12)
    assert per(tp=t, sp=False) == pytest.approx(10 + 24 / t + 5 * a * s / (h * t), rel=1e-12)
    assert per(tp=t, sp=True) == pytest.approx((34 + 5 * a * s / h) / t, rel=1e-12)
    assert per(tp=t, sp=True, recompute="selective") == pytest.approx(34 / t, rel=1e-12)
    assert per(tp=t, sp=True, recompute="full") == pytest.approx(2 / t, rel=1e-12)
    assert per(tp=t, sp=False, recompute="full") == pytest.approx(2, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(korthikanti_cases)
def test_flash_attention_equations(case):
    """FlashAttention (Dao et al. 2022) never stores the a·s² scores, only a 4-byte log-sum-exp per
    head and query (4·a·s·b bytes, in the tensor-parallel part): Korthikanti's counts with 5as/h replaced
    by 4a/h. Selective recompute (which only drops the scores) then changes nothing."""
    s, b, head_dim, a, t = case
    h = a * head_dim
    spec = gpt(h=h, a=a, context=s)
    unit = s * b * h

    def per(tp=1, **kw):
        return activation_bytes_per_layer(spec, b=b, s=s, tp=tp, attention="flash", **kw) / unit

    assert per() == pytest.approx(34 + 4 * a / h, rel=1e-12)
    assert per(tp=t, sp=False) == pytest.approx(10 + 24 / t + 4 * a / (h * t), rel=1e-12)
    assert per(tp=t, sp=True) == pytest.approx((34 + 4 * a / h) / t, rel=1e-12)
    assert per(tp=t, sp=True, recompute="selective") == pytest.approx((34 + 4 * a / h) / t, rel=1e-12)
    assert per(tp=t, sp=False, recompute="selective") == per(tp=t, sp=False)
    assert per(tp=t, sp=True, recompute="full") == pytest.approx(2 / t, rel=1e-12)
    assert per(tp=t, sp=False, recompute="full") == pytest.approx(2, rel=1e-12)
    # flash is the default
    assert activation_bytes_per_layer(spec, b=b, s=s, tp=t) == per(tp=t) * unit


def test_eager_minus_flash_is_the_score_matrix():
    """One dropout GPT layer at tp = 1 without recompute: eager keeps softmax output, dropout mask and
    dropout output (2 + 1 + 2 bytes per score, 5·a·s²·b); flash keeps 4·a·s·b bytes of log-sum-exp."""
    a, s, b = 16, 2048, 3
    spec = gpt(h=1024, a=a, context=s)
    eager = activation_bytes_per_layer(spec, b=b, s=s, attention="eager")
    flash = activation_bytes_per_layer(spec, b=b, s=s, attention="flash")
    assert eager - flash == 5 * a * s * s * b - 4 * a * s * b
    # without dropout the scores are 2 bytes each (softmax output only)
    plain = dataclasses.replace(spec, dropout=False)
    diff = (activation_bytes_per_layer(plain, b=b, s=s, attention="eager")
            - activation_bytes_per_layer(plain, b=b, s=s, attention="flash"))
    assert diff == 2 * a * s * s * b - 4 * a * s * b
    # with full recompute only the layer input is kept, whatever the attention kernel
    assert (activation_bytes_per_layer(spec, b=b, s=s, recompute="full", attention="eager")
            == activation_bytes_per_layer(spec, b=b, s=s, recompute="full", attention="flash") == 2 * s * b * 1024)


def test_estimate_memory_attention_option():
    """estimate_memory passes attention through; the whole-model difference is L·(5·a·s²·b − 4·a·s·b)."""
    spec = gpt(n_layers=4, h=1024, a=16, vocab=5000, context=1024)
    flash, eager = (mem(spec, batch=2, seq_len=1024, attention=x) for x in ("flash", "eager"))
    assert mem(spec, batch=2, seq_len=1024).activations_bytes == flash.activations_bytes  # the default
    assert eager.activations_bytes - flash.activations_bytes == 4 * (5 * 16 * 1024**2 * 2 - 4 * 16 * 1024 * 2)
    assert eager.weights_bytes == flash.weights_bytes and eager.optimizer_bytes == flash.optimizer_bytes


def test_korthikanti_gpt3_table():
    """Korthikanti et al. 2022, Table 2 setting for GPT-3 175B (a=96, h=12288, s=2048, t=8, b=1):
    selective recompute + sequence parallelism keeps 34·s·b·h/t bytes per layer (eager attention)."""
    spec = get_model("gpt3-175b")
    s, b, h, t = 2048, 1, 12288, 8
    eager = dict(tp=t, sp=True, attention="eager")
    assert activation_bytes_per_layer(spec, b=b, s=s, recompute="selective", **eager) == 34 * s * b * h / t
    no_recompute = activation_bytes_per_layer(spec, b=b, s=s, **eager)
    assert no_recompute == pytest.approx(s * b * h / t * (34 + 5 * 96 * s / h))
    # FlashAttention: 34·s·b·h/t plus the 4·a·s·b/t log-sum-exp, recompute none or selective alike
    flash = (34 * s * b * h + 4 * 96 * s * b) / t
    assert activation_bytes_per_layer(spec, b=b, s=s, tp=t, sp=True) == pytest.approx(flash, rel=1e-12)
    assert activation_bytes_per_layer(spec, b=b, s=s, tp=t, sp=True, recompute="selective") == pytest.approx(flash, rel=1e-12)


def test_estimate_memory_uses_korthikanti_per_layer():
    spec = gpt(n_layers=4, h=1024, a=16, vocab=5000, context=1024)
    est = mem(spec, batch=2, seq_len=1024)
    per_layer = activation_bytes_per_layer(spec, b=2, s=1024)
    out = _output_layer_activation_bytes(spec, 2, 1024, 1, 2.0)
    assert est.activations_bytes == pytest.approx(4 * per_layer + out)
    assert out == 4 * 1024 * 2 * 1024 * (1 + 5000 / 1024)
    # with tensor and sequence parallelism the layers and the output layer are split over t
    est = mem(spec, batch=2, seq_len=1024, tp=4)
    per_layer = activation_bytes_per_layer(spec, b=2, s=1024, tp=4, sp=True)
    out = _output_layer_activation_bytes(spec, 2, 1024, 4, 2.0, sp=True)
    assert est.activations_bytes == pytest.approx(4 * per_layer + out)
    assert out == 4 * 1024 * 2 * 1024 / 4 * (1 + 5000 / 1024)


def test_output_layer_activation_bytes():
    """The last stage keeps the final-norm and LM-head inputs (2·s·b·h values, split over t only with
    sequence parallelism) and fp32 logits for the loss (4 bytes · s·b·V, vocab-parallel: split over t).
    At 2 bytes with sp this is Korthikanti et al.'s 4·s·b·h/t·(1 + V/h)."""
    spec = gpt(h=1024, a=16, vocab=5000)
    s, b, h, v, t = 1024, 2, 1024, 5000, 4
    assert _output_layer_activation_bytes(spec, b, s, t, 2.0, sp=True) == 4 * s * b * h / t * (1 + v / h)
    assert _output_layer_activation_bytes(spec, b, s, t, 2.0, sp=False) == 4 * s * b * h + 4 * s * b * v / t
    assert _output_layer_activation_bytes(spec, b, s, t, 2.0) == 4 * s * b * h + 4 * s * b * v / t  # sp off by default
    # fp32 activations double the hidden part only: the logits are fp32 already
    assert _output_layer_activation_bytes(spec, b, s, 1, 4.0) == 8 * s * b * h + 4 * s * b * v
    assert _output_layer_activation_bytes(spec, b, s, t, 4.0, sp=True) == 8 * s * b * h / t + 4 * s * b * v / t
    # estimate_memory: sp without tp means nothing; the fp32 model's last stage holds these bytes
    fp32 = gpt(n_layers=2, h=1024, a=16, vocab=5000, context=1024)
    est = mem(fp32, batch=b, seq_len=s, dtype="fp32", tp=2, sequence_parallel=False)
    per_layer = activation_bytes_per_layer(fp32, b=b, s=s, tp=2, bytes_per_value=4.0)
    assert est.activations_bytes == pytest.approx(2 * per_layer + 8 * s * b * h + 4 * s * b * v / 2, rel=1e-12)


def moe_gpt(**kw) -> ModelSpec:
    """A small MoE model: SwiGLU experts, RMSNorm, no dropout, 8 experts of width 512, top-2."""
    base = dict(n_layers=2, d_model=1024, n_heads=16, n_kv_heads=16, d_ff=4096, vocab_size=1000, ffn="swiglu",
                n_experts=8, top_k=2, d_ff_expert=512, first_dense_layers=1, context=2048)
    base.update(kw)
    return ModelSpec(**base)


def test_moe_layer_activations_by_hand():
    """An MoE layer keeps, besides the attention part: the fp32 router probabilities (4·s·b·E bytes),
    each token's copies of its k expert inputs and outputs (2 · 2·s·b·k·h), and the experts' SwiGLU
    intermediates for the k routed + shared experts (8·s·b·(k + shared)·f_e). Flash attention, 2 bytes."""
    spec = moe_gpt()
    s, b, h, a, e, k, fe = 512, 2, 1024, 16, 8, 2, 512
    norms_inputs = 8 * s * b * h  # two norm inputs, the attention and MLP inputs: 4 × 2 bytes
    proj = 2 * s * b * 4 * h  # q, k, v, attention output (MHA): 4·h values, 2 bytes each
    lse = 4 * a * s * b
    router = 4 * s * b * e
    copies = 2 * (2 * s * b * k * h)
    experts = 8 * s * b * k * fe
    moe = activation_bytes_per_layer(spec, b=b, s=s, moe=True)
    assert moe == norms_inputs + proj + lse + router + copies + experts
    # a dense layer of the same MLP width differs by exactly the router and the copies
    dense_same_width = activation_bytes_per_layer(dataclasses.replace(spec, d_ff=k * fe), b=b, s=s, moe=False)
    assert moe - dense_same_width == router + copies == 4 * s * b * e + 4 * s * b * k * h
    # the router and the copies sit outside the tensor-parallel region: unsplit by t without sp ...
    t = 4
    moe_t = activation_bytes_per_layer(spec, b=b, s=s, moe=True, tp=t)
    assert moe_t == norms_inputs + router + copies + (proj + lse + experts) / t
    # ... and split by t with sequence parallelism
    assert activation_bytes_per_layer(spec, b=b, s=s, moe=True, tp=t, sp=True) == pytest.approx(moe / t, rel=1e-12)
    # fp32 activations: the router is fp32 at any precision; the copies double with the value size
    moe32 = activation_bytes_per_layer(spec, b=b, s=s, moe=True, bytes_per_value=4.0)
    assert moe32 == 2 * (norms_inputs + proj + copies + experts) + lse + router
    # shared experts add to the intermediates only
    shared = activation_bytes_per_layer(dataclasses.replace(spec, n_shared_experts=1), b=b, s=s, moe=True)
    assert shared - moe == 8 * s * b * fe


def test_estimate_memory_counts_moe_and_dense_layers():
    spec = moe_gpt()  # layer 0 dense, layer 1 MoE
    est = mem(spec, batch=2, seq_len=512)
    dense = activation_bytes_per_layer(spec, b=2, s=512, moe=False)
    moe = activation_bytes_per_layer(spec, b=2, s=512, moe=True)
    out = _output_layer_activation_bytes(spec, 2, 512, 1, 2.0)
    assert est.activations_bytes == pytest.approx(dense + moe + out, rel=1e-12)


def test_recompute_ordering_and_sequence_parallel():
    kw = dict(model="llama-2-7b", batch=1, seq_len=4096, tp=8)
    eager = {r: mem(recompute=r, attention="eager", **kw).activations_bytes for r in ("none", "selective", "full")}
    assert eager["full"] < eager["selective"] < eager["none"]
    # flash attention keeps no scores, so selective recompute (which drops them) saves nothing
    flash = {r: mem(recompute=r, **kw).activations_bytes for r in ("none", "selective", "full")}
    assert flash["full"] < flash["selective"] == flash["none"]
    assert flash["full"] == eager["full"]
    assert flash["none"] < eager["none"]
    # eager selective keeps no scores and no log-sum-exp: 32 layers × 4·a·s·b/t less than flash
    assert flash["selective"] - eager["selective"] == pytest.approx(32 * 4 * 32 * 4096 / 8, rel=1e-12)
    assert mem(**kw).activations_bytes < mem(sequence_parallel=False, **kw).activations_bytes
    assert mem(attention="eager", **kw).activations_bytes < mem(attention="eager", sequence_parallel=False, **kw).activations_bytes
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


def test_kv_cache_replicated_beyond_kv_heads_llama_3_70b():
    """Llama 3 70B: 80 layers, 8 KV heads of 128, so 2·80·8·128·2 = 327,680 bytes per token in bf16.
    At tp = 16 each KV head lives on two ranks: every rank holds 1/8 of the cache, not 1/16."""
    full = mem("llama-3-70b", mode="infer", batch=2, seq_len=4096).kv_cache_bytes
    assert full == 2 * 4096 * 2 * 80 * 8 * 128 * 2
    assert mem("llama-3-70b", mode="infer", batch=2, seq_len=4096, tp=8).kv_cache_bytes == full / 8
    assert mem("llama-3-70b", mode="infer", batch=2, seq_len=4096, tp=16).kv_cache_bytes == full / 8
    assert mem("llama-3-70b", mode="infer", batch=2, seq_len=4096, tp=64).kv_cache_bytes == full / 8
    assert mem("llama-3-70b", mode="infer", batch=2, seq_len=4096, tp=4).kv_cache_bytes == full / 4
    # with pipeline stages as well, each stage holds its layers' share: 80 layers / 2 stages
    assert mem("llama-3-70b", mode="infer", batch=2, seq_len=4096, tp=16, pp=2).kv_cache_bytes == full / 8 / 2


def test_kv_dtype():
    bf16 = mem("llama-3-8b", mode="infer", seq_len=1000).kv_cache_bytes
    assert mem("llama-3-8b", mode="infer", seq_len=1000, kv_dtype="fp8").kv_cache_bytes == bf16 / 2
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="fp32").kv_cache_bytes == bf16 * 2
    # weight-only int4 keeps a bf16 cache unless told otherwise
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="int4").kv_cache_bytes == bf16
    # so do fp8 weights (vLLM's kv_cache_dtype="auto"); an fp8 cache is an explicit choice
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="fp8").kv_cache_bytes == bf16 == 1000 * 131_072
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="fp8", kv_dtype="fp8").kv_cache_bytes == bf16 / 2
    assert mem("llama-3-8b", mode="infer", seq_len=1000, dtype="fp16").kv_cache_bytes == bf16


def test_default_kv_dtype():
    """16- and 32-bit weights: the cache follows them; quantized weights (fp8, int8, int4): bf16."""
    assert {d: default_kv_dtype(d) for d in WEIGHT_DTYPES} == {
        "fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "bf16", "int8": "bf16", "int4": "bf16"}
    assert "bf16 KV cache" in mem("llama-3-8b", mode="infer", seq_len=16, dtype="fp8").bytes_per_param_convention


# ---- inference activations (chunked prefill) --------------------------------------------------------

def test_inference_activation_bytes_by_hand():
    """A forward pass frees activations layer by layer: the peak is the residual stream (d values per
    token) plus the widest intermediate (SwiGLU: 3·f for gate, up and their product; attention: q, k, v
    of all heads, 3·a·d_h) split over t, plus fp32 logits for each sequence's last position."""
    spec = get_model("llama-3-8b")  # d 4096, f 14336, 32 heads of 128, vocab 128,256
    widest = max(3 * 14336, 3 * 32 * 128)
    assert widest == 43_008
    assert inference_activation_bytes(spec, 1000, 3) == 1000 * (4096 + widest) * 2 + 3 * 128_256 * 4
    assert inference_activation_bytes(spec, 1000, 3, tp=4) == 1000 * (4096 + widest / 4) * 2 + 3 * 128_256 / 4 * 4
    assert inference_activation_bytes(spec, 1000, 3, 1, 4.0) == 1000 * (4096 + widest) * 4 + 3 * 128_256 * 4
    # GELU MLP: 2·f (input and output of the activation); here the attention projections are wider
    gpt2 = get_model("gpt2")
    assert inference_activation_bytes(gpt2, 10, 1) == 10 * (768 + max(2 * 3072, 3 * 12 * 64)) * 2 + 50257 * 4
    # MoE: the k routed + shared experts' intermediates
    mixtral = get_model("mixtral-8x7b")  # top-2 of width 14336, 32 heads of 128
    assert inference_activation_bytes(mixtral, 8, 2) == 8 * (4096 + 3 * 2 * 14336) * 2 + 2 * 32_000 * 4


def test_inference_activations_are_one_prefill_chunk():
    """estimate_memory(mode="infer") keeps the activations of one prefill chunk of min(b·s, 8192)
    tokens (chunked prefill: Sarathi-Serve; vLLM's max_num_batched_tokens), not of all b·s tokens."""
    spec = get_model("llama-3-8b")
    assert (spec.d_model, spec.d_ff, spec.vocab_size) == (4096, 14336, 128_256)  # the constants below
    widest = 3 * 14336

    def acts(tokens, sequences, tp=1):
        return tokens * (4096 + widest / tp) * 2 + sequences * 128_256 / tp * 4

    assert mem("llama-3-8b", mode="infer", batch=1, seq_len=1000).activations_bytes == acts(1000, 1)
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=1000).activations_bytes == acts(4000, 4)
    # 4 × 8192 = 32,768 tokens are prefilled 8192 at a time
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=8192).activations_bytes == acts(8192, 4)
    assert mem("llama-3-8b", mode="infer", batch=1, seq_len=100_000).activations_bytes == acts(8192, 1)
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=8192, tp=8).activations_bytes == acts(8192, 4, tp=8)
    # the chunk is an input
    assert mem("llama-3-8b", mode="infer", batch=4, seq_len=8192,
               prefill_chunk_tokens=2048).activations_bytes == acts(2048, 4)
    assert mem("llama-3-8b", mode="infer", batch=1, seq_len=100,
               prefill_chunk_tokens=2048).activations_bytes == acts(100, 1)
    # training ignores it
    assert mem("llama-3-8b", seq_len=1024, prefill_chunk_tokens=16).activations_bytes == mem(
        "llama-3-8b", seq_len=1024).activations_bytes


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
    est = mem(overhead_gib=3, gpu="h100-sxm")
    assert est.overhead_bytes == 3 * 2**30
    assert est.gpu_memory_bytes == 80 * 2**30
    assert est.headroom_bytes == pytest.approx(80 * 2**30 - est.total_bytes_per_gpu - 3 * 2**30)
    assert est.headroom_bytes == pytest.approx(get_gpu("h100-sxm").memory_bytes - est.total_bytes_per_gpu - 3 * 2**30)
    assert mem(gpu="h100-sxm").overhead_bytes == 2**30  # default: 1 GiB


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(model="nope"), dict(model=None), dict(mode="serve"), dict(batch=0), dict(batch=-1), dict(batch=1.5),
    dict(batch=float("nan")), dict(seq_len=0), dict(seq_len=float("inf")), dict(dtype="int2"),
    dict(dtype="int4"), dict(dtype="int8"), dict(kv_dtype="int4"), dict(dp=0), dict(zero=4), dict(zero=-1),
    dict(tp=0), dict(tp=64), dict(pp=0), dict(pp=33), dict(recompute="all"), dict(optimizer="lion"),
    dict(microbatches=0), dict(gpu="tpu"), dict(overhead_gib=-1), dict(overhead_gib=float("nan")),
    dict(batch="abc"), dict(tp=10**400), dict(attention="sdpa"), dict(attention=None), dict(prefill_chunk_tokens=0),
    dict(prefill_chunk_tokens=1.5), dict(prefill_chunk_tokens=float("inf")), dict(tp=3), dict(tp=48),
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
