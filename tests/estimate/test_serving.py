"""Serving roofline: prefill, decode, concurrency, GPUs for a load, $ per million tokens."""

from __future__ import annotations

import math

import pytest

from engine.catalog import defaults, get_gpu, get_model
from engine.errors import ValidationError
from engine.estimate.serving import ServeInput, _weight_bytes, decode_weight_bytes_read, estimate_serving, prefill_flops


def serve(model="llama-3-8b", gpu="h100-sxm", **kw):
    kw.setdefault("prompt_tokens", 512)
    kw.setdefault("output_tokens", 256)
    return estimate_serving(ServeInput(model=model, gpu=gpu, **kw))


def test_decode_at_concurrency_one_is_weight_streaming():
    """At batch 1 every decode step streams all weights plus the KV cache at ~80% of HBM bandwidth
    (roofline, Williams et al. 2009; LLM-Viewer, Yuan et al. 2024)."""
    spec = get_model("llama-3-8b")
    est = serve(concurrency=1)
    kv = 131_072 * (512 + 256 // 2)
    assert est.weights_bytes == spec.params_total * 2
    assert est.decode_bound == "memory"
    assert est.time_per_output_token_s == pytest.approx((est.weights_bytes + kv) / (3350e9 * 0.8), rel=1e-12)
    assert est.decode_tokens_per_s == pytest.approx(1 / est.time_per_output_token_s)
    # ~6 ms per token, ~166 tokens/s for an 8B model on an H100
    assert 150 < est.decode_tokens_per_s < 180


def test_long_prefill_is_compute_bound():
    est = serve(prompt_tokens=32_000)
    spec = get_model("llama-3-8b")
    assert est.prefill_bound == "compute"
    rate = 989.4e12 * defaults()["prefill_compute_efficiency"]
    assert est.prefill_seconds == pytest.approx(prefill_flops(spec, 32_000) / rate, rel=1e-12)


def test_tiny_prefill_is_weight_read_bound():
    est = serve(prompt_tokens=1)
    assert est.prefill_bound == "memory"
    assert est.prefill_seconds == pytest.approx(est.weights_bytes / (3350e9 * 0.8))


def test_prefill_flops_formula():
    """Forward pass 2·N·P (Kaplan et al. 2020, eq. 2.1) plus causal attention over P(P+1)/2 pairs."""
    spec = get_model("llama-2-7b")
    per_pair = 2 * 32 * 32 * (128 + 128)
    assert prefill_flops(spec, 1000) == 2 * spec.params_matmul_active * 1000 + per_pair * 1000 * 1001 / 2
    # Mistral's 4096 window: positions past it attend to 4096 keys
    mistral = get_model("mistral-7b")
    w = 4096
    per_pair = 2 * 32 * 32 * 256
    expected = 2 * mistral.params_matmul_active * 10_000 + per_pair * (w * (w + 1) / 2 + (10_000 - w) * w)
    assert prefill_flops(mistral, 10_000) == expected


def test_concurrency_raises_throughput_and_lowers_cost():
    runs = [serve(concurrency=c) for c in (1, 2, 8, 32, 128)]
    tps = [r.decode_tokens_per_s for r in runs]
    cost = [r.cost_per_million_output_tokens_usd for r in runs]
    assert tps == sorted(tps) and len(set(tps)) == len(tps)
    assert cost == sorted(cost, reverse=True) and len(set(cost)) == len(cost)
    # each sequence gets slower as the batch grows
    per_seq = [r.decode_tokens_per_s_per_sequence for r in runs]
    assert per_seq == sorted(per_seq, reverse=True)


def test_cost_formulas():
    est = serve(concurrency=16, price_usd_per_hour=3.6)
    assert est.cost_per_million_output_tokens_usd == pytest.approx(3.6 / 3600 * est.time_per_output_token_s / 16 * 1e6)
    assert est.cost_per_million_input_tokens_usd == pytest.approx(3.6 / 3600 * est.prefill_seconds / 512 * 1e6)
    assert est.request_latency_s == pytest.approx(est.prefill_seconds + 256 * est.time_per_output_token_s)


def test_gpus_needed_scales_with_load():
    base = serve(concurrency=32, requests_per_s=1)
    assert base.requests_per_s_per_replica > 0
    needed = []
    for rps in (1, 10, 100, 1000):
        est = serve(concurrency=32, requests_per_s=rps)
        assert est.replicas == max(1, math.ceil(rps / est.requests_per_s_per_replica - 1e-9))
        assert est.gpus_needed == est.replicas * est.gpus
        needed.append(est.gpus_needed)
    assert needed == sorted(needed)
    assert needed[-1] == pytest.approx(10 * needed[-2], rel=0.05)


def test_tensor_parallel_replica():
    one = serve(concurrency=1)
    two = serve(concurrency=1, gpus=2)
    assert two.time_per_output_token_s == pytest.approx(one.time_per_output_token_s / 2)
    assert two.max_concurrency >= one.max_concurrency
    assert two.gpus_needed % 2 == 0


def test_model_that_does_not_fit():
    est = serve(model="llama-3.1-405b", gpu="l4", dtype="bf16")
    assert est.fits is False
    assert est.max_concurrency == 0
    assert est.min_gpus_to_fit > 1
    # 811.7 GB of bf16 weights over 23 usable GB per L4 needs 36 GPUs; tensor parallelism splits the
    # 128 heads, so the smallest group that holds it is the next divisor of 128: 64.
    raw = math.ceil((est.weights_bytes + est.kv_cache_bytes_per_sequence) / 23e9)
    assert raw == 36 and est.min_gpus_to_fit == 64
    # The load is served by replicas that hold the model, not by the group that cannot.
    held = serve(model="llama-3.1-405b", gpu="l4", dtype="bf16", gpus=64)
    assert held.fits and est.gpus_needed == held.gpus_needed and est.gpus_needed % 64 == 0


def test_tensor_parallel_must_divide_heads():
    with pytest.raises(ValidationError, match="tp must divide n_heads"):
        serve(model="llama-3-8b", gpu="h100-sxm", gpus=3)


def test_llama_2_70b_fp16_needs_two_80gb_gpus():
    """The common deployment fact: Llama 2 70B in 16-bit is ~138 GB of weights, two 80 GB GPUs."""
    est = serve(model="llama-2-70b", gpu="a100-80gb", dtype="fp16")
    assert est.weights_bytes == pytest.approx(137.95e9, rel=1e-3)
    assert est.fits is False and est.min_gpus_to_fit == 2
    assert serve(model="llama-2-70b", gpu="a100-80gb", dtype="fp16", gpus=2).fits is True
    assert serve(model="llama-2-70b", gpu="a100-80gb", dtype="int4").fits is True


def test_max_concurrency_from_free_memory():
    est = serve(model="llama-2-7b", gpu="a100-80gb", prompt_tokens=2000, output_tokens=2000)
    free = 80e9 - defaults()["overhead_gb"] * 1e9 - est.weights_bytes
    assert est.kv_cache_bytes_per_sequence == 524_288 * 4000
    assert est.max_concurrency == int(free // (524_288 * 4000))
    assert est.concurrency == est.max_concurrency  # default: as many as fit
    assert serve(max_batch=8).max_concurrency == 8


def test_moe_decode_reads_only_touched_experts():
    spec = get_model("mixtral-8x7b")
    total = _weight_bytes(spec, "bf16")
    one = decode_weight_bytes_read(spec, "bf16", 1)
    experts = 32 * spec.expert_params_per_layer() * 2
    assert one == pytest.approx(total - experts + experts * 2 / 8)
    assert one < total
    many = decode_weight_bytes_read(spec, "bf16", 10_000)
    assert many == pytest.approx(total)
    reads = [decode_weight_bytes_read(spec, "bf16", c) for c in (1, 2, 4, 8, 16)]
    assert reads == sorted(reads)
    # dense models read everything at any batch
    dense = get_model("llama-3-8b")
    assert decode_weight_bytes_read(dense, "bf16", 1) == _weight_bytes(dense, "bf16")


def test_moe_decode_faster_than_dense_of_same_size():
    moe = serve(model="mixtral-8x7b", gpu="h200", concurrency=1)
    assert moe.time_per_output_token_s < moe.weights_bytes / (4800e9 * 0.8)


def test_quantized_weights_and_kv():
    bf16, fp8, int4 = (serve(dtype=d, concurrency=1) for d in ("bf16", "fp8", "int4"))
    spec = get_model("llama-3-8b")
    embed = spec.params_embedding + spec.params_head
    assert fp8.weights_bytes == (spec.params_total - embed) * 1 + embed * 2
    assert int4.weights_bytes == pytest.approx((spec.params_total - embed) * (0.5 + 2 / 128) + embed * 2)
    assert int4.time_per_output_token_s < fp8.time_per_output_token_s < bf16.time_per_output_token_s
    # fp8 compute on H100 halves compute-bound prefill time
    long_bf16, long_fp8 = serve(prompt_tokens=30_000), serve(prompt_tokens=30_000, dtype="fp8")
    assert long_fp8.prefill_seconds == pytest.approx(long_bf16.prefill_seconds * 989.4 / 1978.9)
    # KV dtype follows fp8, defaults to bf16 for int formats
    assert fp8.kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence / 2
    assert int4.kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence
    assert serve(kv_dtype="fp8").kv_cache_bytes_per_sequence == fp8.kv_cache_bytes_per_sequence


def test_mla_cache_is_small():
    est = serve(model="deepseek-v3", gpu="h200", gpus=8, dtype="fp8", prompt_tokens=1000, output_tokens=1000)
    assert est.kv_cache_bytes_per_sequence == 61 * 576 * 1 * 2000
    assert est.fits is True


def test_efficiency_overrides():
    est = serve(concurrency=1, decode_efficiency=1.0)
    kv = 131_072 * (512 + 128)
    assert est.time_per_output_token_s == pytest.approx((est.weights_bytes + kv) / 3350e9)
    a = serve(prompt_tokens=32_000, prefill_efficiency=0.3).prefill_seconds
    b = serve(prompt_tokens=32_000, prefill_efficiency=0.6).prefill_seconds
    assert a == pytest.approx(2 * b)


def test_to_dict_fields():
    d = serve().to_dict()
    for key in ("prefill_seconds", "decode_tokens_per_s", "time_per_output_token_s", "max_concurrency",
                "gpus_needed", "cost_per_million_input_tokens_usd", "cost_per_million_output_tokens_usd"):
        assert key in d
    assert d["gpu"] == "h100-sxm" and get_gpu(d["gpu"]).price_usd_per_hour == d["price_usd_per_hour"]


@pytest.mark.parametrize("kw", [
    dict(model="gpt-9"), dict(gpu="tpu"), dict(gpus=0), dict(gpus=5000), dict(gpus=1.5), dict(dtype="int2"),
    dict(kv_dtype="int4"), dict(prompt_tokens=0), dict(prompt_tokens=-3), dict(output_tokens=0),
    dict(output_tokens=float("nan")), dict(concurrency=0), dict(requests_per_s=0), dict(requests_per_s=-1),
    dict(requests_per_s=float("inf")), dict(price_usd_per_hour=-1), dict(prefill_efficiency=0),
    dict(prefill_efficiency=1.5), dict(decode_efficiency=-0.1), dict(overhead_gb=-1), dict(max_batch=0),
    dict(prompt_tokens="abc"), dict(concurrency=10**400), dict(model=None), dict(gpu=None),
])
def test_bad_serving_input(kw):
    base = dict(model="llama-3-8b", gpu="h100-sxm")
    base.update(kw)
    with pytest.raises(ValidationError) as info:
        estimate_serving(ServeInput(**base))
    assert "\n" not in str(info.value)
