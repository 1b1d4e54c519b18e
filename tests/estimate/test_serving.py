"""Serving roofline: prefill, decode, concurrency, GPUs for a load, $ per million tokens."""

from __future__ import annotations

import math

import pytest

from engine.catalog import defaults, get_gpu
from engine.estimate.models import get_model
from engine.errors import ValidationError
from engine.estimate.serving import ServeInput, _weight_bytes, decode_weight_bytes_read, estimate_serving, prefill_flops

H100_BYTES = 3350e9 * 0.8  # decode bandwidth: datasheet × default efficiency 0.8
H100_FLOPS = 989.4e12 * 0.6  # bf16 compute: datasheet × default efficiency 0.6
GIB = 2**30
# Fixed latency of one forward pass at the defaults: 20 us per layer, plus two 15 us all-reduces per
# layer under tensor parallelism.
LLAMA_3_8B_PASS = 32 * 20e-6


# Issue 18 added three terms measured against published engines (all-reduce bandwidth, host work per
# sequence per decode step, a fixed per-request TTFT cost). The hand-worked roofline cases below write out
# the terms that existed before; they turn the new ones off (tests/estimate/test_serving_terms.py pins
# those), so each formula here still checks exactly what it names.
OFF = dict(allreduce_bandwidth_gbs=0.0, sequence_step_us=0.0, request_overhead_ms=0.0)


def serve(model="llama-3-8b", gpu="h100-sxm", **kw):
    kw.setdefault("prompt_tokens", 512)
    kw.setdefault("output_tokens", 256)
    for key, value in OFF.items():
        kw.setdefault(key, value)
    return estimate_serving(ServeInput(model=model, gpu=gpu, **kw))


def pure(**kw):
    """The bare roofline: no per-layer or all-reduce latency."""
    return serve(layer_overhead_us=0, allreduce_us=0, **kw)


def test_decode_at_concurrency_one_is_weight_streaming():
    """At batch 1 every decode step streams all weights plus the KV cache at ~80% of HBM bandwidth
    (roofline, Williams et al. 2009; LLM-Viewer, Yuan et al. 2024), plus 20 us of fixed latency per
    layer (kernel gaps with CUDA graphs)."""
    spec = get_model("llama-3-8b")
    est = serve(concurrency=1)
    kv = 131_072 * (512 + 256 // 2)
    roofline = (spec.params_total * 2 + kv) / H100_BYTES
    assert est.weights_bytes == spec.params_total * 2
    assert est.decode_bound == "memory"
    assert est.time_per_output_token_s == pytest.approx(roofline + 32 * 20e-6, rel=1e-12)
    assert est.decode_tokens_per_s == pytest.approx(1 / est.time_per_output_token_s)
    # without the fixed latencies the step is exactly the pure roofline
    assert pure(concurrency=1).time_per_output_token_s == pytest.approx(roofline, rel=1e-12)
    # sanity anchor: (16.06 GB + 84 MB) / 2.68 TB/s = 6.02 ms, + 0.64 ms = 6.66 ms per token: ~150
    # tokens/s single-stream for an 8B model on an H100, in line with TensorRT-LLM and vLLM reports
    assert est.time_per_output_token_s == pytest.approx(6.664e-3, rel=1e-3)
    assert 145 < est.decode_tokens_per_s < 155


def test_long_prefill_is_compute_bound():
    """32,000 tokens: compute-bound, in ceil(32000 / 8192) = 4 chunks, each one pass of fixed latency."""
    est = serve(prompt_tokens=32_000)
    spec = get_model("llama-3-8b")
    assert est.prefill_bound == "compute"
    rate = 989.4e12 * defaults()["prefill_compute_efficiency"]
    assert est.prefill_seconds == pytest.approx(prefill_flops(spec, 32_000) / rate + 4 * LLAMA_3_8B_PASS, rel=1e-12)
    assert pure(prompt_tokens=32_000).prefill_seconds == pytest.approx(prefill_flops(spec, 32_000) / rate, rel=1e-12)


def test_tiny_prefill_is_weight_read_bound():
    est = serve(prompt_tokens=1)
    assert est.prefill_bound == "memory"
    assert est.prefill_seconds == pytest.approx(est.weights_bytes / H100_BYTES + LLAMA_3_8B_PASS, rel=1e-12)
    assert pure(prompt_tokens=1).prefill_seconds == pytest.approx(est.weights_bytes / H100_BYTES, rel=1e-12)


def test_moe_tiny_prefill_reads_only_the_routed_experts():
    """A one-token prompt of Mixtral reads the experts that one token is routed to (2 of 8 per layer)."""
    spec = get_model("mixtral-8x7b")
    est = serve(model="mixtral-8x7b", gpu="h200", prompt_tokens=1)
    total = _weight_bytes(spec, "bf16")
    experts = 32 * 8 * 3 * 4096 * 14336 * 2
    read = total - experts + experts * 2 / 8
    assert est.prefill_bound == "memory"
    assert est.prefill_seconds == pytest.approx(read / (4800e9 * 0.8) + 32 * 20e-6, rel=1e-12)


def test_prefill_runs_one_pass_per_chunk():
    """Chunked prefill: ceil(prompt / chunk) forward passes, each with the fixed pass latency."""
    for prompt, chunk, passes in ((20_000, None, 3), (20_000, 1000, 20), (8192, None, 1), (8193, None, 2),
                                  (100, 7, 15)):
        kw = dict(prompt_tokens=prompt, prefill_chunk_tokens=chunk)
        with_latency, bare = serve(**kw), pure(**kw)
        assert with_latency.prefill_seconds - bare.prefill_seconds == pytest.approx(passes * LLAMA_3_8B_PASS, rel=1e-9)


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
    """Input tokens are billed at the GPU time a busy server spends per prompt token when it batches
    prompts into full 8192-token chunks: max(compute per token, one weight read per chunk) plus one
    pass latency per chunk. Output tokens share each decode step among the concurrent sequences."""
    spec = get_model("llama-3-8b")
    est = serve(concurrency=16, price_usd_per_hour=3.6)
    pf_compute = prefill_flops(spec, 512) / H100_FLOPS
    per_input_token = max(pf_compute / 512, spec.params_total * 2 / H100_BYTES / 8192) + LLAMA_3_8B_PASS / 8192
    assert per_input_token == pf_compute / 512 + LLAMA_3_8B_PASS / 8192  # compute-bound
    assert est.cost_per_million_input_tokens_usd == pytest.approx(3.6 / 3600 * per_input_token * 1e6, rel=1e-12)
    assert est.cost_per_million_output_tokens_usd == pytest.approx(3.6 / 3600 * est.time_per_output_token_s / 16 * 1e6)
    assert est.request_latency_s == pytest.approx(est.prefill_seconds + 256 * est.time_per_output_token_s)
    # a replica's GPU time per request: its prompt tokens at that rate, and its share of 256 decode steps
    per_request = 512 * per_input_token + 256 * est.time_per_output_token_s / 16
    assert est.requests_per_s_per_replica == pytest.approx(1 / per_request, rel=1e-12)
    # the replica's dollars per second are n GPUs' price: a 2-GPU replica pays twice per second
    two = serve(concurrency=16, price_usd_per_hour=3.6, gpus=2)
    assert two.cost_per_million_output_tokens_usd == pytest.approx(
        2 * 3.6 / 3600 * two.time_per_output_token_s / 16 * 1e6, rel=1e-12)


def test_input_cost_is_amortized_over_a_chunk():
    """Once compute-bound, the cost per input token does not depend on the prompt length except through
    causal attention (2·L·H·(d_qk + d_v)·(p + 1)/2 FLOPs per token): a 1-token prompt is not billed a
    whole weight read, as a latency-based cost would do."""
    spec = get_model("llama-3-8b")
    dollars_per_s = 2.99 / 3600
    per_position = 2 * 32 * 32 * (128 + 128)
    costs = {}
    for p in (1, 16, 512, 8192, 32_000):
        est = serve(prompt_tokens=p)
        attention = per_position * (p + 1) / 2 / H100_FLOPS
        base = 2 * spec.params_matmul_active / H100_FLOPS + LLAMA_3_8B_PASS / 8192
        assert est.cost_per_million_input_tokens_usd == pytest.approx(dollars_per_s * (base + attention) * 1e6, rel=1e-12)
        costs[p] = est.cost_per_million_input_tokens_usd - dollars_per_s * attention * 1e6
    # what is left is one constant: the same dollars per input token for every prompt length
    assert max(costs.values()) == pytest.approx(min(costs.values()), rel=1e-9)
    # prompts of 1 and 16 tokens cost the same per token to 0.1%, although one token's prefill latency
    # is a whole weight read (memory-bound) and sixteen tokens' is not much longer
    one, sixteen = serve(prompt_tokens=1), serve(prompt_tokens=16)
    assert one.cost_per_million_input_tokens_usd == pytest.approx(sixteen.cost_per_million_input_tokens_usd, rel=1e-3)
    assert one.prefill_seconds / 1 > 10 * sixteen.prefill_seconds / 16


def test_input_cost_weight_read_bound_with_small_chunks():
    """With 16-token chunks each chunk's weight read outweighs its compute: the cost per input token is
    one weight read and one pass latency over 16 tokens, whatever the prompt length."""
    weights = get_model("llama-3-8b").params_total * 2
    expected = 2.99 / 3600 * (weights / H100_BYTES / 16 + LLAMA_3_8B_PASS / 16) * 1e6
    for p in (1, 16, 100, 1000):
        est = serve(prompt_tokens=p, prefill_chunk_tokens=16)
        assert est.cost_per_million_input_tokens_usd == pytest.approx(expected, rel=1e-12)


def test_gpus_needed_scales_with_load():
    base = serve(concurrency=32, requests_per_s=1)
    assert base.requests_per_s_per_replica > 0
    needed = []
    for rps in (1, 10, 100, 1000, 10_000):
        est = serve(concurrency=32, requests_per_s=rps)
        assert est.replicas == max(1, math.ceil(rps / est.requests_per_s_per_replica - 1e-9))
        assert est.gpus_needed == est.replicas * est.gpus
        needed.append(est.gpus_needed)
    assert needed == sorted(needed)
    # linear in the load: ceil(10·x) lies in (10·(ceil(x) − 1), 10·ceil(x)]
    for small, large in zip(needed[1:], needed[2:]):
        assert 10 * (small - 1) < large <= 10 * small
    assert needed[-1] == pytest.approx(10 * needed[-2], rel=0.05)


def test_tensor_parallel_replica():
    """Each of n ranks streams 1/n of the weights and (8 KV heads over 2 ranks) 1/2 of the cache: the
    bare roofline step halves. The fixed latency does not: 20 us per layer plus, under TP, two 15 us
    all-reduces per layer."""
    one, two = pure(concurrency=1), pure(concurrency=1, gpus=2)
    assert two.time_per_output_token_s == pytest.approx(one.time_per_output_token_s / 2, rel=1e-12)
    assert two.max_concurrency >= one.max_concurrency
    assert two.gpus_needed % 2 == 0
    one_d, two_d = serve(concurrency=1), serve(concurrency=1, gpus=2)
    assert one_d.time_per_output_token_s == pytest.approx(one.time_per_output_token_s + 32 * 20e-6, rel=1e-12)
    assert two_d.time_per_output_token_s == pytest.approx(two.time_per_output_token_s + 32 * (20 + 2 * 15) * 1e-6,
                                                          rel=1e-12)
    assert two_d.max_concurrency == two.max_concurrency  # latency changes no memory


def test_per_step_overhead_on_a_tensor_parallel_replica():
    """Llama 3 70B on 4 H100s at concurrency 1: going from no fixed latency to the defaults adds exactly
    80 layers × (20 + 2 × 15) us = 4 ms to every decode step, and once per chunk to the prefill."""
    kw = dict(model="llama-3-70b", gpus=4, concurrency=1, prompt_tokens=20_000)
    bare, default = pure(**kw), serve(**kw)
    assert default.time_per_output_token_s - bare.time_per_output_token_s == pytest.approx(80 * (20 + 30) * 1e-6, rel=1e-9)
    assert default.prefill_seconds - bare.prefill_seconds == pytest.approx(3 * 80 * 50e-6, rel=1e-9)
    # the two latencies are inputs: 10 us per layer, 100 us per all-reduce
    custom = serve(layer_overhead_us=10, allreduce_us=100, **kw)
    assert custom.time_per_output_token_s - bare.time_per_output_token_s == pytest.approx(80 * 210e-6, rel=1e-9)
    # one GPU has no all-reduce
    one = dict(model="llama-3-8b", concurrency=1)
    assert (serve(allreduce_us=1000, **one).time_per_output_token_s
            == pytest.approx(serve(**one).time_per_output_token_s, rel=1e-12))
    # the bare step is the per-rank roofline: 1/4 of the weights and 1/4 of the 8 KV heads per rank
    weights = 70_553_706_496 * 2
    kv = 327_680 * (20_000 + 128)
    assert bare.time_per_output_token_s == pytest.approx((weights / 4 + kv / 4) / H100_BYTES, rel=1e-12)


def test_decode_compute_bound_is_per_rank():
    """A large batch of short sequences is compute-bound in its matrix multiplies: each rank runs 1/n of
    C·2·N FLOPs per step at 60% of its peak. Since issue 18 the step's attention is its own kernel with its
    own roofline (LLM-Viewer's per-operator roofline): at 24 cached positions it is bound by reading its 1/n
    of the 4096 KV caches, which the step adds (before, one roofline of the totals counted attention FLOPs)."""
    spec = get_model("llama-3-8b")
    kw = dict(concurrency=4096, prompt_tokens=16, output_tokens=16)
    ctx = 16 + 16 // 2
    gemm = 4096 * 2 * spec.params_matmul_active
    kv = 4096 * 131_072 * ctx
    assert 4096 * 2 * 32 * 32 * 256 * ctx / H100_FLOPS < kv / H100_BYTES  # attention is bound by its reads
    for n in (1, 2):
        est = pure(gpus=n, **kw)
        assert est.decode_bound == "compute"
        assert est.time_per_output_token_s == pytest.approx(gemm / n / H100_FLOPS + kv / n / H100_BYTES, rel=1e-12)
    assert serve(gpus=2, **kw).time_per_output_token_s == pytest.approx(
        gemm / 2 / H100_FLOPS + kv / 2 / H100_BYTES + 32 * 50e-6, rel=1e-12)


def test_model_that_does_not_fit():
    est = serve(model="llama-3.1-405b", gpu="l4", dtype="bf16")
    assert est.fits is False
    assert est.max_concurrency == 0
    assert est.min_gpus_to_fit > 1
    # 811.7 GB of bf16 weights over 23 usable GiB per L4 (24 GiB less 1 GiB) needs 33 GPUs; tensor
    # parallelism splits the 128 heads, and at 32 ranks each would hold 811.7e9 / 32 = 25.4 GB > 23 GiB,
    # so the smallest group that holds it is the next divisor of 128: 64.
    raw = math.ceil((est.weights_bytes + est.kv_cache_bytes_per_sequence) / (23 * GIB))
    assert raw == 33 and est.min_gpus_to_fit == 64
    assert est.weights_bytes / 32 > 23 * GIB > est.weights_bytes / 64
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
    """80 GiB less 1 GiB of overhead, the weights, and an activation reserve for one 8192-token prefill
    chunk (residual d plus the widest intermediate, SwiGLU's 3·f, at 2 bytes) with fp32 last-position
    logits for the 256 sequences of a full batch; what is left holds whole sequences of KV cache."""
    est = serve(model="llama-2-7b", gpu="a100-80gb", prompt_tokens=2000, output_tokens=2000)
    reserve = 8192 * (4096 + 3 * 11008) * 2 + 256 * 32_000 * 4
    assert reserve == 640_942_080
    free = 80 * GIB - defaults()["overhead_gib"] * GIB - est.weights_bytes - reserve
    assert est.weights_bytes == 6_738_415_616 * 2
    assert est.kv_cache_bytes_per_sequence == 524_288 * 4000
    assert est.max_concurrency == int(free // (524_288 * 4000)) == 33  # 70.71e9 / 2.097e9 = 33.7
    assert est.concurrency == est.max_concurrency  # default: as many as fit (33 is under the scheduler's 256)
    assert est.max_batch_sequences == 256
    capped = serve(max_batch=8)  # the scheduler cap bounds the default concurrency, not the memory bound
    assert capped.max_batch_sequences == 8 and capped.concurrency == 8 and capped.max_concurrency > 8
    # the overhead and the chunk are inputs
    more = serve(model="llama-2-7b", gpu="a100-80gb", prompt_tokens=2000, output_tokens=2000, overhead_gib=10)
    assert more.max_concurrency == int((free - 9 * GIB) // (524_288 * 4000))
    small_chunk = serve(model="llama-2-7b", gpu="a100-80gb", prompt_tokens=2000, output_tokens=2000,
                        prefill_chunk_tokens=512, max_batch=16)
    small_reserve = 512 * (4096 + 3 * 11008) * 2 + 16 * 32_000 * 4
    assert small_chunk.max_concurrency == int((free + reserve - small_reserve) // (524_288 * 4000)) == 34
    assert small_chunk.concurrency == 16  # the smaller of the memory bound and the scheduler cap


def test_max_concurrency_is_the_memory_bound_not_the_scheduler_cap():
    """Issue 11, item 1: Llama-3-8B bf16 on one H100 SXM, 512 prompt + 256 output tokens. By hand:
    usable 80 GiB - 1 GiB overhead = 84,825,604,096 B; weights 8,030,261,248 × 2 = 16,060,522,496 B;
    activation reserve of one 8192-token chunk, 8192 × (4096 + 3 × 14336) × 2 = 771,751,936 B, plus fp32
    last-position logits for 256 sequences, 256 × 128,256 × 4 = 131,334,144 B; free 67,861,995,520 B.
    KV cache per sequence: 2 (K, V) × 32 layers × 8 KV heads × 128 × 2 bytes = 131,072 B per token
    × 768 tokens = 100,663,296 B. 67,861,995,520 / 100,663,296 = 674.2, so 674 sequences fit (the
    issue's "about 690" leaves out the overhead and activations: 16 GB of weights off 80 GiB gives 693).
    vLLM would print this as its maximum concurrency; the scheduler's max_num_seqs (256) is its own
    field, and the default concurrency is the smaller of the two."""
    est = serve()
    free = 79 * GIB - 8_030_261_248 * 2 - (8192 * (4096 + 3 * 14336) * 2 + 256 * 128_256 * 4)
    assert free == 67_861_995_520
    assert est.kv_cache_bytes_per_sequence == 100_663_296
    assert est.max_concurrency == free // 100_663_296 == 674
    assert est.max_batch_sequences == 256 and est.concurrency == 256
    # a roomier scheduler: the memory bound takes over as the default concurrency
    roomy = serve(max_batch=1024)
    assert roomy.max_batch_sequences == 1024
    # 1024 sequences' logits take 1024 × 128,256 × 4 B instead of 256 × ...: a little less room
    assert roomy.max_concurrency == (free - 768 * 128_256 * 4) // 100_663_296 == 670
    assert roomy.concurrency == roomy.max_concurrency
    # an explicit concurrency is taken as given; the two bounds are still reported
    four = serve(concurrency=4)
    assert (four.concurrency, four.max_concurrency, four.max_batch_sequences) == (4, 674, 256)


def test_kv_cache_replicated_beyond_kv_heads_in_serving():
    """Llama 3 70B (8 KV heads) on 16 H100s: each KV head lives on two ranks, so each rank holds 1/8 of
    every sequence's cache, not 1/16: that, not 1/16, bounds the concurrency and the bytes each step reads."""
    prompt, output = 30_000, 2000
    est = serve(model="llama-3-70b", gpus=16, prompt_tokens=prompt, output_tokens=output)
    weights = 70_553_706_496 * 2
    kv_seq = 2 * 80 * 8 * 128 * 2 * (prompt + output)
    assert est.kv_cache_bytes_per_sequence == kv_seq
    # reserve per rank: 8192 tokens × (d + 3·f/16) × 2 bytes + 256 × V/16 fp32 logits
    reserve = 8192 * (8192 + 3 * 28672 / 16) * 2 + 256 * 128_256 / 16 * 4
    free = 79 * GIB - weights / 16 - reserve
    assert est.max_concurrency == int(free // (kv_seq / 8)) == 57
    assert int(free // (kv_seq / 16)) == 115  # what splitting the heads 16 ways would wrongly allow
    # a bare decode step reads 1/16 of the weights and 1/8 of the cache per rank
    step = pure(model="llama-3-70b", gpus=16, prompt_tokens=prompt, output_tokens=output, concurrency=4)
    ctx = prompt + output // 2
    assert step.time_per_output_token_s == pytest.approx(
        (weights / 16 + 4 * 327_680 / 8 * ctx) / H100_BYTES, rel=1e-12)


def test_mla_latent_replicated_on_every_rank():
    """DeepSeek-V3's MLA cache is one latent per layer that every head needs: each of 8 ranks holds all
    of it. fp8 weights (bf16 embedding and head) on 8 H200s of 141 GiB, bf16 cache of 61·576·2 bytes
    per token, 128k-token sequences."""
    prompt, output = 100_000, 28_000
    est = serve(model="deepseek-v3", gpu="h200", gpus=8, dtype="fp8", prompt_tokens=prompt, output_tokens=output)
    embed = 2 * 129_280 * 7168
    weights = (671_026_419_200 - embed) * 1 + embed * 2
    assert est.weights_bytes == weights
    kv_seq = 61 * (512 + 64) * 2 * (prompt + output)
    assert est.kv_cache_bytes_per_sequence == kv_seq
    # widest intermediate: the q, k, v of 128 heads of 192 (73,728) beats 9 experts' 3 × 2048
    reserve = 8192 * (7168 + max(3 * 9 * 2048, 3 * 128 * 192) / 8) * 2 + 256 * 129_280 / 8 * 4
    free = 140 * GIB - weights / 8 - reserve
    assert est.max_concurrency == int(free // kv_seq) == 7
    assert est.fits is True


def test_min_gpus_to_fit_is_a_divisor_of_n_heads():
    """Tensor parallelism splits the heads: the smallest group that holds the model is the smallest
    divisor d of n_heads whose ranks each hold 1/d of the weights, the activation reserve and their
    share of one sequence's cache, not the raw ceil(bytes / usable)."""
    # Llama 3.1 405B bf16 on H100s: 811.7 GB over 79 GiB is 10 GPUs, not a divisor of 128 heads;
    # at 8 ranks each holds 101.5 GB > 79 GiB; at 16 ranks 50.7 GB fits.
    est = serve(model="llama-3.1-405b", dtype="bf16")
    weights = 405_853_388_800 * 2
    assert math.ceil(weights / (79 * GIB)) == 10
    assert weights / 8 > 79 * GIB > weights / 16
    assert est.fits is False and est.min_gpus_to_fit == 16
    for model, gpu, dtype in (("llama-3.1-405b", "h100-sxm", "bf16"), ("llama-3.1-405b", "a100-40gb", "int4"),
                              ("llama-3-70b", "l4", "bf16"), ("llama-3-70b", "h100-sxm", "fp8"),
                              ("mixtral-8x7b", "a10g", "int8"), ("gpt2", "a10g", "fp32"),
                              ("deepseek-v3", "h100-sxm", "fp8"), ("llama-2-70b", "a100-80gb", "fp16")):
        heads = get_model(model).n_heads
        need = serve(model=model, gpu=gpu, dtype=dtype).min_gpus_to_fit
        assert heads % need == 0, (model, gpu, dtype, need)
        assert serve(model=model, gpu=gpu, dtype=dtype, gpus=need).fits is True
        smaller = [d for d in range(1, need) if heads % d == 0]
        if smaller:
            assert serve(model=model, gpu=gpu, dtype=dtype, gpus=smaller[-1]).fits is False


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
    # fp8 compute on H100 halves compute-bound prefill time; the 4 chunks' pass latency stays
    long_bf16, long_fp8 = serve(prompt_tokens=30_000), serve(prompt_tokens=30_000, dtype="fp8")
    passes = 4 * LLAMA_3_8B_PASS
    assert long_fp8.prefill_seconds - passes == pytest.approx((long_bf16.prefill_seconds - passes) * 989.4 / 1978.9)
    bare_bf16, bare_fp8 = pure(prompt_tokens=30_000), pure(prompt_tokens=30_000, dtype="fp8")
    assert bare_fp8.prefill_seconds == pytest.approx(bare_bf16.prefill_seconds * 989.4 / 1978.9, rel=1e-12)
    # the KV cache stays bf16 for quantized weights, fp8 included (vLLM's kv_cache_dtype="auto")
    assert bf16.kv_cache_bytes_per_sequence == 131_072 * (512 + 256)
    assert fp8.kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence
    assert int4.kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence
    # an fp8 cache is an explicit choice, with any weights
    assert serve(kv_dtype="fp8").kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence / 2
    assert serve(dtype="fp8", kv_dtype="fp8").kv_cache_bytes_per_sequence == bf16.kv_cache_bytes_per_sequence / 2
    assert serve(dtype="fp32").kv_cache_bytes_per_sequence == 2 * bf16.kv_cache_bytes_per_sequence


def test_mla_cache_is_small():
    est = serve(model="deepseek-v3", gpu="h200", gpus=8, dtype="fp8", prompt_tokens=1000, output_tokens=1000)
    assert est.kv_cache_bytes_per_sequence == 61 * 576 * 2 * 2000  # bf16 cache by default
    assert est.fits is True
    fp8_cache = serve(model="deepseek-v3", gpu="h200", gpus=8, dtype="fp8", kv_dtype="fp8", prompt_tokens=1000,
                      output_tokens=1000)
    assert fp8_cache.kv_cache_bytes_per_sequence == 61 * 576 * 1 * 2000


def test_efficiency_overrides():
    est = serve(concurrency=1, decode_efficiency=1.0)
    kv = 131_072 * (512 + 128)
    assert est.time_per_output_token_s == pytest.approx((est.weights_bytes + kv) / 3350e9 + LLAMA_3_8B_PASS, rel=1e-12)
    passes = 4 * LLAMA_3_8B_PASS  # 32,000 tokens in 4 chunks
    a = serve(prompt_tokens=32_000, prefill_efficiency=0.3).prefill_seconds
    b = serve(prompt_tokens=32_000, prefill_efficiency=0.6).prefill_seconds
    assert a - passes == pytest.approx(2 * (b - passes), rel=1e-12)
    a = pure(prompt_tokens=32_000, prefill_efficiency=0.3).prefill_seconds
    b = pure(prompt_tokens=32_000, prefill_efficiency=0.6).prefill_seconds
    assert a == pytest.approx(2 * b, rel=1e-12)


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
    dict(prefill_efficiency=1.5), dict(decode_efficiency=-0.1), dict(overhead_gib=-1), dict(max_batch=0),
    dict(prompt_tokens="abc"), dict(concurrency=10**400), dict(model=None), dict(gpu=None),
    dict(overhead_gib=float("nan")), dict(prefill_chunk_tokens=0), dict(prefill_chunk_tokens=2.5),
    dict(layer_overhead_us=-1), dict(layer_overhead_us=float("inf")), dict(allreduce_us=-0.5),
    dict(allreduce_us="slow"), dict(max_batch=1.5),
])
def test_bad_serving_input(kw):
    base = dict(model="llama-3-8b", gpu="h100-sxm")
    base.update(kw)
    with pytest.raises(ValidationError) as info:
        estimate_serving(ServeInput(**base))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("model", "gpu", "prompt", "stages"), [
    ("deepseek-v3", "h100-sxm", 10_000_000, 9),  # a 10M-token context: 128-way TP is not enough
    ("llama-3-8b", "l4", 2_000_000, 2),
])
def test_min_gpus_beyond_tensor_parallel_adds_pipeline_stages(model, gpu, prompt, stages):
    """When no divisor of n_heads holds the model, the answer is a full tensor-parallel group of n_heads
    ranks times the fewest pipeline stages (k >= 2) that split its weights and one sequence's KV."""
    from engine.estimate.memory import inference_activation_bytes

    spec, g = get_model(model), get_gpu(gpu)
    est = serve(model=model, gpu=gpu, prompt_tokens=prompt, output_tokens=10)
    h = spec.n_heads
    usable = g.memory_bytes - 2**30
    per_group = est.weights_bytes / h + est.kv_cache_bytes_per_sequence * spec.kv_fraction_per_rank(h)
    room = usable - inference_activation_bytes(spec, 8192, 256, h, 2.0)
    assert math.ceil(per_group / room) == stages or (stages == 2 and per_group / room <= 2)
    assert est.min_gpus_to_fit == h * stages
    assert not est.fits and est.gpus_needed % est.min_gpus_to_fit == 0


def test_405b_on_l4s_fits_in_one_tensor_parallel_group_of_64():
    """811 GB of bf16 weights need at least 33 L4s; 64 is the smallest divisor of the 128 heads."""
    est = serve(model="llama-3.1-405b", gpu="l4", prompt_tokens=1000, output_tokens=10)
    assert est.min_gpus_to_fit == 64
    assert serve(model="llama-3.1-405b", gpu="l4", gpus=64, prompt_tokens=1000, output_tokens=10).fits
