"""Issue 18's serving terms, written out by hand, and the published-table aim they were added for
(NVIDIA's TensorRT-LLM throughput table; bench/serving_published.py)."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest

from engine.catalog import defaults
from engine.estimate.serving import ServeInput, estimate_serving

ROOT = Path(__file__).resolve().parents[2]


def serve(**kw):
    kw.setdefault("prompt_tokens", 512)
    kw.setdefault("output_tokens", 256)
    return estimate_serving(ServeInput(model="llama-3-8b", gpu="h100-sxm", **kw))


def test_defaults_are_data_with_sources():
    d = defaults()
    assert d["allreduce_bandwidth_gbs"] == 360 and d["decode_sequence_overhead_us"] == 5 and d["request_overhead_ms"] == 10


def test_fixed_request_cost_adds_to_time_to_first_token_only():
    with_, without = serve(request_overhead_ms=10), serve(request_overhead_ms=0)
    assert with_.prefill_seconds - without.prefill_seconds == pytest.approx(0.010, rel=1e-9)
    assert with_.requests_per_s_per_replica == pytest.approx(without.requests_per_s_per_replica, rel=1e-12)


def test_host_work_per_sequence_per_step():
    # 256 sequences × 5 us = 1.28 ms more per decode step
    a, b = serve(concurrency=256, sequence_step_us=5), serve(concurrency=256, sequence_step_us=0)
    assert a.time_per_output_token_s - b.time_per_output_token_s == pytest.approx(256 * 5e-6, rel=1e-9)


def test_allreduce_bandwidth_term_by_hand():
    # Llama 3 8B on 2 ranks: each token's 4096 bf16 activations, 2·(2−1)/2 of them per GPU, twice in each of
    # 32 layers: 32 × 2 × 1 × 8192 bytes = 524,288 bytes at 360 GB/s = 1.456 us per token.
    per_token = 32 * 2 * 1 * 4096 * 2 / 360e9
    a, b = serve(gpus=2, concurrency=64, allreduce_bandwidth_gbs=360), serve(gpus=2, concurrency=64,
                                                                             allreduce_bandwidth_gbs=0)
    assert a.time_per_output_token_s - b.time_per_output_token_s == pytest.approx(64 * per_token, rel=1e-9)
    assert a.prefill_seconds - b.prefill_seconds == pytest.approx(512 * per_token, rel=1e-9)
    one = serve(gpus=1, allreduce_bandwidth_gbs=360).time_per_output_token_s
    assert one == serve(gpus=1, allreduce_bandwidth_gbs=0).time_per_output_token_s  # no TP, no all-reduce


def _bench():
    spec = importlib.util.spec_from_file_location("serving_published", ROOT / "bench" / "serving_published.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_tensorrt_llm_rows_within_the_aim():
    bench = _bench()
    rows = bench.ratios(bench.AIM)
    assert len(rows) == 16
    worst = [label for label, _, _, r in rows if not 1 / 1.25 <= r <= 1.25]
    assert not worst, worst
    assert statistics.median(r for *_, r in rows) <= 1.10
