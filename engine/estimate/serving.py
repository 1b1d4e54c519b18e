"""Serving: prefill latency, decode throughput, concurrency, GPUs for a load, and $ per million tokens.

A roofline model (Williams et al. 2009), as LLM-Viewer (Yuan et al. 2024, "LLM Inference Unveiled")
applies it to Transformers, computed per tensor-parallel rank (the ranks work in lockstep on their
shards): each phase takes max(FLOPs / compute rate, bytes / memory bandwidth), plus a fixed latency
per forward pass (per layer, and two all-reduces per layer under tensor parallelism; Shoeybi et al.
2019).
- Prefill of P prompt tokens is compute-bound: 2·N·P matrix FLOPs (Kaplan et al. 2020, eq. 2.1, the
  forward pass) plus causal attention, 2·L·H·(d_qk + d_v)·Σ_t min(t, window), in chunks of at most
  prefill_chunk_tokens (Sarathi-Serve, Agrawal et al. 2024); a busy server fills whole chunks, so the
  cost of an input token shares one weight read per chunk.
- A decode step at concurrency C reads the rank's weights once (MoE: the experts that C tokens touch,
  E·(1 − (1 − k/E)^C) per layer under uniform routing) plus its share of C sequences' KV caches (KV
  heads fewer than ranks, and MLA's latent, are replicated); it is bandwidth-bound until C is large.
- Memory per rank holds weights/n, one prefill chunk's activations and the KV caches. What is left
  after the weights and activations, in whole sequences of KV cache, is ``max_concurrency`` (the figure
  vLLM prints at start-up as "maximum concurrency for N tokens per request"); the scheduler's own cap
  (vLLM's ``max_num_seqs``, default 256) is a separate input, ``max_batch_sequences``, and the default
  ``concurrency`` is the smaller of the two.
- Rates are datasheet peaks times efficiency factors (engine/catalog/defaults.toml, editable).
A replica is ``gpus`` GPUs in one tensor-parallel group holding one copy of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from engine.catalog import GPUSpec, defaults, resolve_gpu
from engine.estimate.architecture import ModelSpec
from engine.estimate.models import resolve_model
from engine.errors import ValidationError, require_finite_result, require_number
from engine.estimate.memory import check_tensor_parallel, default_kv_dtype, inference_activation_bytes
from engine.estimate.dtypes import BYTES_PER_VALUE, QUANTIZED, bytes_per_weight, compute_precision, kv_dtype, weight_dtype


@dataclass(frozen=True, slots=True)
class ServeInput:
    model: ModelSpec | str
    gpu: GPUSpec | str
    gpus: int = 1
    dtype: str = "bf16"
    kv_dtype: str | None = None
    prompt_tokens: int = 512
    output_tokens: int = 256
    concurrency: int | None = None
    requests_per_s: float = 1.0
    price_usd_per_hour: float | None = None
    prefill_efficiency: float | None = None
    decode_efficiency: float | None = None
    overhead_gib: float | None = None
    max_batch: int | None = None
    prefill_chunk_tokens: int | None = None
    layer_overhead_us: float | None = None
    allreduce_us: float | None = None


@dataclass(frozen=True, slots=True)
class ServeEstimate:
    gpu: str
    gpus: int
    fits: bool
    min_gpus_to_fit: int
    weights_bytes: float
    kv_cache_bytes_per_sequence: float
    max_concurrency: int
    max_batch_sequences: int
    concurrency: int
    prefill_seconds: float
    prefill_bound: str
    time_per_output_token_s: float
    decode_tokens_per_s: float
    decode_tokens_per_s_per_sequence: float
    decode_bound: str
    request_latency_s: float
    requests_per_s_per_replica: float
    replicas: int
    gpus_needed: int
    price_usd_per_hour: float
    cost_per_million_input_tokens_usd: float
    cost_per_million_output_tokens_usd: float

    def to_dict(self) -> dict:
        return asdict(self)


def _weight_bytes(spec: ModelSpec, dtype: str) -> float:
    """All weights of the model: quantized layers, bf16 embeddings and head for quantized formats."""
    if dtype not in QUANTIZED:
        return spec.params_total * bytes_per_weight(dtype)
    embed = spec.params_embedding + spec.params_head
    return (spec.params_total - embed) * bytes_per_weight(dtype) + embed * 2.0


def decode_weight_bytes_read(spec: ModelSpec, dtype: str, concurrency: int) -> float:
    """Weight bytes one decode step reads: everything but the routed experts that no token visits."""
    total = _weight_bytes(spec, dtype)
    if not spec.is_moe:
        return total
    moe_layers = spec.n_layers - spec.n_dense_layers
    experts = moe_layers * spec.expert_params_per_layer() * bytes_per_weight(dtype)
    touched = 1.0 - (1.0 - spec.top_k / spec.n_experts) ** concurrency
    return total - experts + experts * touched


def prefill_flops(spec: ModelSpec, prompt_tokens: int) -> float:
    """Forward FLOPs of a causal prefill of ``prompt_tokens`` (one sequence)."""
    p = prompt_tokens
    attended = spec.causal_pairs(p)  # positions beyond a sliding window attend to w keys
    per_position = 2.0 * spec.n_layers * spec.n_heads * (spec.qk_head_dim + spec.v_dim)
    return 2.0 * spec.params_matmul_active * p + per_position * attended


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def min_gpus_to_fit(spec: ModelSpec, weights: float, kv_per_seq: float, usable_per_gpu: float,
                    reserve: Callable[[int], float] = lambda d: 0.0) -> int:
    """Smallest tensor-parallel group (a divisor of n_heads) in which each rank holds its share of the
    weights, its activation ``reserve`` and its share of one sequence's KV cache (replicated heads
    included). When even n_heads ranks cannot, pipeline stages are added to a full tensor-parallel
    group: k·n_heads GPUs for the smallest k whose stages split the weights and KV cache enough."""
    lower = max(1, math.ceil(weights / max(usable_per_gpu, 1.0)))
    for d in _divisors(spec.n_heads):
        if d >= lower and weights / d + reserve(d) + kv_per_seq * spec.kv_fraction_per_rank(d) <= usable_per_gpu:
            return d
    h = spec.n_heads
    room = usable_per_gpu - reserve(h)
    per_group = weights / h + kv_per_seq * spec.kv_fraction_per_rank(h)
    stages = max(2, math.ceil(per_group / room)) if room > 0 else 2 ** 31
    return min(h * stages, 2 ** 31)


def estimate_serving(inp: ServeInput) -> ServeEstimate:
    """Serve ``inp.model`` on replicas of ``inp.gpus`` GPUs. When that group cannot hold the model,
    ``fits`` is False, the latency and cost figures describe the group as if it could, and
    ``gpus_needed`` is counted in replicas of ``min_gpus_to_fit`` GPUs, which can."""
    spec = resolve_model(inp.model)
    n = require_number("gpus", inp.gpus, low=1, high=4096, integer=True)
    check_tensor_parallel(spec, n)
    est = _estimate(inp, spec, n)
    if not est.fits and est.min_gpus_to_fit > n:
        held = _estimate(replace(inp, concurrency=None), spec, est.min_gpus_to_fit)
        est = replace(est, replicas=held.replicas, gpus_needed=held.gpus_needed)
    return est


def _estimate(inp: ServeInput, spec: ModelSpec, n: int) -> ServeEstimate:
    gpu = resolve_gpu(inp.gpu)
    dflt = defaults()
    dtype = weight_dtype(inp.dtype)
    kv = kv_dtype(inp.kv_dtype) if inp.kv_dtype is not None else default_kv_dtype(dtype)
    prompt = require_number("prompt-tokens", inp.prompt_tokens, low=1, high=1e7, integer=True)
    output = require_number("output-tokens", inp.output_tokens, low=1, high=1e7, integer=True)
    rps = require_number("requests-per-s", inp.requests_per_s, low=0, low_inclusive=False, high=1e9)
    price = require_number("price", gpu.price_usd_per_hour if inp.price_usd_per_hour is None else inp.price_usd_per_hour, low=0, high=1e4)
    eff_c = require_number("prefill-efficiency", dflt["prefill_compute_efficiency"] if inp.prefill_efficiency is None else inp.prefill_efficiency, low=0, low_inclusive=False, high=1)
    eff_b = require_number("decode-efficiency", dflt["decode_bandwidth_efficiency"] if inp.decode_efficiency is None else inp.decode_efficiency, low=0, low_inclusive=False, high=1)
    overhead = require_number("overhead-gib", dflt["overhead_gib"] if inp.overhead_gib is None else inp.overhead_gib, low=0, high=1e4) * 2**30
    max_batch = require_number("max-num-seqs", dflt["max_batch_sequences"] if inp.max_batch is None else inp.max_batch, low=1, high=1e6, integer=True)

    chunk = require_number("prefill-chunk-tokens", dflt["prefill_chunk_tokens"] if inp.prefill_chunk_tokens is None
                           else inp.prefill_chunk_tokens, low=1, high=1e8, integer=True)
    layer_us = require_number("layer-overhead-us", dflt["decode_layer_overhead_us"] if inp.layer_overhead_us is None
                              else inp.layer_overhead_us, low=0, high=1e6)
    allreduce_us = require_number("allreduce-us", dflt["allreduce_latency_us"] if inp.allreduce_us is None
                                  else inp.allreduce_us, low=0, high=1e6)

    precision = compute_precision(dtype)
    if gpu.peak_flops(precision) <= 0:
        raise ValidationError(f"gpu {gpu.id} has no {precision} throughput in the catalog")
    # Everything below is per tensor-parallel rank: the n ranks work in lockstep on their shards.
    flops_rate = gpu.peak_flops(precision) * eff_c
    byte_rate = gpu.bandwidth_gbs * 1e9 * eff_b
    usable = gpu.memory_bytes - overhead
    weights = _weight_bytes(spec, dtype)
    kv_per_token = spec.kv_cache_bytes_per_token(BYTES_PER_VALUE[kv])
    kv_per_seq = kv_per_token * spec.cached_positions(prompt + output)
    act_bytes = 4.0 if dtype == "fp32" else 2.0
    reserve = inference_activation_bytes(spec, chunk, max_batch, n, act_bytes)
    kv_seq_rank = kv_per_seq * spec.kv_fraction_per_rank(n)
    free = usable - weights / n - reserve
    # The memory bound: whole sequences of KV cache in what the weights and activations leave. (A model
    # that caches nothing is bounded by the scheduler alone.)
    max_conc = int(max(0.0, free) // kv_seq_rank) if kv_seq_rank > 0 else int(max_batch)
    fits = max_conc >= 1
    min_gpus = min_gpus_to_fit(spec, weights, kv_per_seq, usable,
                               lambda d: inference_activation_bytes(spec, chunk, max_batch, d, act_bytes))
    if inp.concurrency is None:  # as many as both the memory and the scheduler allow
        conc = max(1, min(max_conc, int(max_batch)))
    else:
        conc = require_number("concurrency", inp.concurrency, low=1, high=1e6, integer=True)
    # Fixed latency of one forward pass: kernel gaps per layer, and two all-reduces per layer under TP.
    pass_overhead = spec.n_layers * (layer_us + (2.0 * allreduce_us if n > 1 else 0.0)) * 1e-6

    # Prefill latency of one prompt: compute-bound, or for short prompts bound by reading the weights
    # its tokens touch (MoE: the experts they are routed to); one pass per prefill chunk.
    passes = -(-prompt // chunk)
    pf_compute = prefill_flops(spec, prompt) / n / flops_rate
    pf_memory = passes * decode_weight_bytes_read(spec, dtype, min(prompt, chunk)) / n / byte_rate  # a read per pass
    prefill_s = max(pf_compute, pf_memory) + passes * pass_overhead
    # GPU time per input token when a busy server batches prompts into full chunks: the weight read
    # and the fixed pass latency are shared by a whole chunk.
    per_input_token_s = (max(pf_compute / prompt, decode_weight_bytes_read(spec, dtype, chunk) / n / byte_rate / chunk)
                         + pass_overhead / chunk)
    # Decode: one step for `conc` sequences at the mean context length prompt + output/2.
    ctx = spec.cached_positions(prompt + output // 2)
    step_bytes = (decode_weight_bytes_read(spec, dtype, conc) / n
                  + conc * kv_per_token * spec.kv_fraction_per_rank(n) * ctx)
    step_flops = conc * (2.0 * spec.params_matmul_active + spec.attention_flops_forward_per_token(ctx)) / n
    t_mem, t_cmp = step_bytes / byte_rate, step_flops / flops_rate
    step = max(t_mem, t_cmp) + pass_overhead
    # A replica spends prefill time per request (batched) and shares each decode step among conc.
    per_request_gpu_time = prompt * per_input_token_s + output * step / conc
    replica_rps = 1.0 / per_request_gpu_time if per_request_gpu_time > 0 else math.inf
    # Tiny efficiencies or rates: times that overflow, or a replica count no float (or fleet) holds.
    if not (step > 0 and replica_rps > 0 and rps / replica_rps <= 1e15):
        raise ValidationError(
            f"inputs out of range: {per_request_gpu_time:.3g} GPU-seconds per request at {rps:g} requests/s; "
            "check the efficiencies and the GPU's figures"
        )
    replicas = max(1, math.ceil(rps / replica_rps - 1e-9))
    dollars_per_s = n * price / 3600.0
    est = ServeEstimate(
        gpu=gpu.id, gpus=int(n), fits=fits, min_gpus_to_fit=min_gpus, weights_bytes=weights,
        kv_cache_bytes_per_sequence=kv_per_seq, max_concurrency=max_conc,
        max_batch_sequences=int(max_batch), concurrency=int(conc),
        prefill_seconds=prefill_s, prefill_bound="compute" if pf_compute >= pf_memory else "memory",
        time_per_output_token_s=step, decode_tokens_per_s=conc / step,
        decode_tokens_per_s_per_sequence=1.0 / step, decode_bound="memory" if t_mem >= t_cmp else "compute",
        request_latency_s=prefill_s + output * step, requests_per_s_per_replica=replica_rps, replicas=replicas,
        gpus_needed=replicas * int(n), price_usd_per_hour=price,
        cost_per_million_input_tokens_usd=dollars_per_s * per_input_token_s * 1e6,
        cost_per_million_output_tokens_usd=dollars_per_s * step / conc * 1e6,
    )
    require_finite_result(est, "the efficiencies and the GPU's figures")
    return est
