"""Serving: prefill latency, decode throughput, concurrency, GPUs for a load, $ per million tokens."""

import streamlit as st

from engine.catalog import defaults
from engine.charts import serving_cost_by_gpu, serving_curve
from engine.estimate.dtypes import KV_DTYPES, WEIGHT_DTYPES
from engine.estimate.serving import ServeInput, estimate_serving
from engine.artifacts import latest_serving_calibration
from engine.estimate.sensitivity import serving_by_concurrency, serving_by_gpu
from engine.units import format_bytes
from ui.currency import current_currency, money_table, price_input
from ui.breakeven import breakeven_section
from ui.widgets import downloads, gpu_picker, model_picker, money, run_engine

st.title("Serving")
st.caption("A roofline per tensor-parallel rank: prefill is compute-bound, each decode step reads the rank's weights "
           "and KV cache, plus a fixed latency per layer and per all-reduce. Datasheet peaks × the efficiencies below.")

c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("Model")
    spec = model_picker(key="serve-model")
    dtype = st.selectbox("Weights dtype", WEIGHT_DTYPES, index=WEIGHT_DTYPES.index("bf16"), key="serve-dtype")
    kv = st.selectbox("KV-cache dtype", KV_DTYPES, index=KV_DTYPES.index("bf16"), key="serve-kv")
with c2:
    st.subheader("Traffic")
    prompt = st.number_input("Prompt tokens", 1, 10_000_000, 1000, key="prompt")
    output = st.number_input("Output tokens", 1, 10_000_000, 250, key="output")
    rps = st.number_input("Requests per second", 0.001, 1e7, 10.0, key="rps")
    conc = st.number_input("Concurrent sequences (0 = as many as fit, up to the scheduler limit)", 0, 1_000_000, 0,
                           key="conc")
with c3:
    st.subheader("Hardware")
    gpu = gpu_picker(key="serve-gpu")
    n = st.number_input("GPUs per replica (tensor parallel)", 1, 4096, 1, key="serve-gpus")
    price = price_input("Price per GPU-hour", gpu.price_usd_per_hour, key=f"serve-price-{gpu.id}")
with st.expander("Assumptions (editable; sources on the Reference data page)"):
    d = defaults()
    e = st.columns(4)
    eff_c = e[0].number_input("Prefill compute efficiency", 0.05, 1.0, d["prefill_compute_efficiency"], 0.05, key="eff-c",
                              help="fraction of the dense tensor peak that prefill reaches")
    eff_b = e[1].number_input("Decode bandwidth efficiency", 0.05, 1.0, d["decode_bandwidth_efficiency"], 0.05, key="eff-b",
                              help="fraction of the datasheet memory bandwidth that decode reaches")
    overhead = e[2].number_input("Fixed overhead per GPU (GiB)", 0.0, 100.0, d["overhead_gib"], 0.25, key="serve-overhead")
    max_batch = e[3].number_input("Scheduler limit (sequences)", 1, 100_000, int(d["max_batch_sequences"]), key="max-batch",
                                  help="like vLLM's max_num_seqs: the most sequences the server batches, "
                                       "whatever the memory holds")
    chunk = e[0].number_input("Prefill chunk (tokens)", 1, 10_000_000, int(d["prefill_chunk_tokens"]), key="chunk",
                              help="tokens prefilled per step; bounds activation memory, amortizes the weight read")
    layer_us = e[1].number_input("Per-layer latency (µs)", 0.0, 10_000.0, d["decode_layer_overhead_us"], 5.0, key="layer-us",
                                 help="kernel launch gaps per layer per forward pass")
    allreduce_us = e[2].number_input("All-reduce latency (µs)", 0.0, 10_000.0, d["allreduce_latency_us"], 5.0,
                                     key="allreduce-us", help="two per layer with tensor parallelism")
    ar_bw = e[3].number_input("All-reduce bandwidth (GB/s)", 0.0, 100_000.0, d["allreduce_bandwidth_gbs"], 10.0,
                              key="allreduce-bw", help="per GPU, for tensor parallelism's activations; 0 leaves it out")
    seq_us = e[0].number_input("Host work per sequence per step (µs)", 0.0, 10_000.0, d["decode_sequence_overhead_us"],
                               1.0, key="seq-us", help="scheduling, sampling, detokenizing each running sequence")
    request_ms = e[1].number_input("Fixed time to first token (ms)", 0.0, 100_000.0, d["request_overhead_ms"], 1.0,
                                   key="request-ms", help="per request, outside the forward passes")

# Measured efficiencies from the latest serving calibration (Inference page / `calibrate --serve`).
measured = latest_serving_calibration()
if measured and st.toggle("Use measured efficiencies", key="serve-measured",
                          help="from the latest serving calibration: measured prefill and decode on "
                               f"{measured['device_name']} against that machine's own roofline"):
    eff_c = min(1.0, max(0.05, float(measured["implied_prefill_efficiency"])))
    eff_b = min(1.0, max(0.05, float(measured["implied_decode_efficiency"])))
    st.caption(f"Measured ({measured['name']}, {measured['backend']} on {measured['device_name']}): prefill "
               f"efficiency {eff_c:.2f}, decode bandwidth efficiency {eff_b:.2f}.")

inp = ServeInput(model=spec, gpu=gpu, gpus=int(n), dtype=dtype, kv_dtype=kv, prompt_tokens=int(prompt),
                 output_tokens=int(output), concurrency=int(conc) or None, requests_per_s=float(rps),
                 price_usd_per_hour=price, prefill_efficiency=eff_c, decode_efficiency=eff_b,
                 overhead_gib=overhead, max_batch=int(max_batch), prefill_chunk_tokens=int(chunk),
                 layer_overhead_us=layer_us, allreduce_us=allreduce_us, allreduce_bandwidth_gbs=ar_bw,
                 sequence_step_us=seq_us, request_overhead_ms=request_ms)
est = run_engine(estimate_serving, inp)

st.divider()
if not est.fits:
    st.warning(f"{spec.name} in {dtype} does not fit on {est.gpus} × {gpu.name} with room for one sequence's KV cache: "
               f"it needs at least {est.min_gpus_to_fit} GPUs. Figures below assume it did.")
m = st.columns(4)
m[0].metric("Prefill latency", f"{est.prefill_seconds * 1e3:,.1f} ms", help=f"{est.prefill_bound}-bound, one prompt")
m[1].metric("Time per output token", f"{est.time_per_output_token_s * 1e3:,.1f} ms",
            help=f"{est.decode_bound}-bound at {est.concurrency} concurrent sequences")
m[2].metric("Decode throughput", f"{est.decode_tokens_per_s:,.0f} tok/s", help="all sequences of one replica")
m[3].metric("Concurrency used", f"{est.concurrency:,}",
            help="the figures here are at this many concurrent sequences: yours, or the smaller of the two bounds below")
m = st.columns(4)
m[0].metric("Max concurrency (memory)", f"{est.max_concurrency:,}",
            help=f"sequences of {int(prompt) + int(output):,} tokens whose KV cache fits after the weights and "
                 "activations: what vLLM prints as 'maximum concurrency' at start-up")
m[1].metric("Scheduler limit", f"{est.max_batch_sequences:,}", help="max_num_seqs: the server batches at most this many")
m[2].metric("GPUs needed", f"{est.gpus_needed:,}", help=f"{est.replicas} replica(s) of {est.gpus} for {rps:g} req/s")
m[3].metric("Weights", format_bytes(est.weights_bytes), help=f"KV cache per sequence: {format_bytes(est.kv_cache_bytes_per_sequence)}")
m = st.columns(4)
m[0].metric("Cost / M input tokens", money(est.cost_per_million_input_tokens_usd),
            help="GPU time per input token when a busy server fills whole prefill chunks")
m[1].metric("Cost / M output tokens", money(est.cost_per_million_output_tokens_usd),
            help=f"{est.gpus} GPU(s) at {money(est.price_usd_per_hour)} per GPU-hour, shared by {est.concurrency} sequences")
m[2].metric("Monthly cost at this load", money(est.monthly_cost_usd),
            help=f"{est.gpus_needed} GPU(s) × {money(est.price_usd_per_hour)} per GPU-hour × 730 hours")
m[3].metric("Cost / M tokens at this load", money(est.cost_per_million_tokens_at_load_usd),
            help="the monthly cost over every token (prompt + output) this load sends in a month")
st.caption(f"**Full batch** (the first two): what a token costs when the GPUs are always busy at {est.concurrency} "
           f"concurrent sequences. **At this load** (the last two): what the {est.gpus_needed} GPU(s) you need for "
           f"{rps:g} requests/s cost a month, over the tokens you actually serve; they are {est.utilization:.0%} "
           "used, so each token costs more than at full batch.")

curve = run_engine(serving_by_concurrency, inp)
by_gpu = run_engine(serving_by_gpu, inp)
left, right = st.columns(2)
left.plotly_chart(serving_curve(curve, current_currency()), width="stretch")
right.plotly_chart(serving_cost_by_gpu(by_gpu, gpu.id, current_currency()), width="stretch")
with st.expander("By concurrency and by GPU type (tables)"):
    st.dataframe(money_table(curve), hide_index=True, width="stretch")
    st.dataframe(money_table(by_gpu), hide_index=True, width="stretch")
downloads("serving-estimate", est.to_dict(), curve)
downloads("serving-by-gpu", None, by_gpu)

st.divider()
breakeven_section(spec, gpu, int(n) if est.fits else None, dtype, price, int(prompt), int(output), float(rps), serve=inp)
