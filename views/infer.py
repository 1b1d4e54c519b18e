"""Inference: a trained run on a backend, live. Streamed generation (or class probabilities), backends side by
side, the attention core against the roofline, predicted vs measured serving, and downloads. Share a run with
``/infer?run=NAME``. Benchmarks, exports and calibrations run in their own process (engine.infer.jobs)."""

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import access
from engine.infer import jobs
from engine.infer.capabilities import GRAPH_BY_BACKEND, check_dtype, list_backends, resolve_backend
from engine.infer.export import DEFAULT_OPSET, default_path
from engine.infer.generate import Stream, classify
from engine.lab.loader import load_run
from engine.artifacts import latest_serving_calibration
from engine.lab import checkpoint as ck
from engine.store import Registry
from ui.widgets import downloads, run_engine, stop_without_torch, watch_job

st.title("Inference")
stop_without_torch()

st.caption("Run a trained model on the fastest backend this machine has, see it stream, and compare backends. "
           "Every backend computes the same function (checked against PyTorch); the benchmark shows how fast.")


if st.radio("Model", ["Lab run", "Model folder (Hugging Face)"], horizontal=True, key="infer_kind") != "Lab run":
    from ui.hf_infer import model_folder_section  # noqa: E402 - the second model kind (engine/infer/hf_infer.py)

    model_folder_section(Registry())
    st.stop()


# ---- which run, which backend --------------------------------------------------------------------------
def _runs() -> dict[str, str]:
    """Registered training runs that have a checkpoint: name -> run folder (newest first); runs that
    fine-tuned a model folder are served in the "Model folder" view. Opening the registry creates it on
    first use, with the shipped demo run (engine/store.py)."""
    frame = Registry().list_runs(kind="train")
    return {r["name"]: r["run_dir"] for r in frame.to_dict(orient="records")
            if ck.latest_path(r["run_dir"]) is not None and (r.get("config") or {}).get("kind") != "hf"}


runs = _runs()
if not runs:
    st.info("No trained run with a checkpoint yet: train one on the Model lab page, then come back.")
    st.stop()
names = list(runs)
wanted = st.query_params.get("run")
if wanted and wanted not in runs:
    st.warning(f"No run named {wanted!r} with a checkpoint here; showing {names[0]}.")
if "infer_run" not in st.session_state or (wanted in runs and st.session_state.get("infer_wanted") != wanted):
    st.session_state["infer_run"] = wanted if wanted in runs else names[0]
    st.session_state["infer_wanted"] = wanted
backends = list_backends()
available = [b.name for b in backends if b.available]
c1, c2, c3 = st.columns([2, 2, 1])
run_name = c1.selectbox("Run", names, key="infer_run")
backend = c2.selectbox("Backend", ["auto", *available], key="infer_backend",
                       help="auto: the fastest available here. Unavailable backends are listed below with the reason.")
dtype = c3.selectbox("Precision", ["fp32", "fp16", "bf16", "int8"], key="infer_dtype")
st.query_params["run"] = run_name
with st.expander("Backends on this machine"):
    st.dataframe(pd.DataFrame([{"backend": b.name, "available": b.available, "device": b.device,
                                "version": b.version or "", "precisions": ", ".join(b.dtypes), "why not": b.reason}
                               for b in backends]), hide_index=True, width="stretch")


@st.cache_resource(show_spinner="Loading the model on its backend (an ONNX export the first time)…", max_entries=8)
def _runner(run_dir: str, key: str, backend: str, dtype: str):
    """One loaded model per (checkpoint, backend, precision), shared by every session; runners lock per call."""
    from engine.infer.backends import make_runner
    from engine.lab.loader import load_run

    loaded = load_run(run_dir)
    return loaded, make_runner(loaded, backend, dtype)


def _checkpoint_key(run_dir: str) -> str:
    path = ck.latest_path(run_dir)
    return f"{path}" if path else ""


run_dir = runs[run_name]
chosen, how = run_engine(resolve_backend, backend)
run_engine(check_dtype, chosen, dtype)


graph = GRAPH_BY_BACKEND.get(chosen)
if graph:  # an ONNX backend: export first, in its own process, never inside this page run
    target = default_path(run_engine(load_run, run_dir), "model", dtype, graph, DEFAULT_OPSET)
    if not target.is_file():
        prep = st.session_state.get("infer_prepare_done")
        if prep and prep["status"] == "failed" and st.session_state.get("infer_prepare_target") == str(target):
            st.error(prep["error"])
            st.stop()
        if not st.session_state.get("infer_prepare_job"):
            st.session_state["infer_prepare_target"] = str(target)
            st.session_state["infer_prepare_job"] = run_engine(
                jobs.start, "export", ["--run", run_dir, "--dtype", dtype, "--graph", graph, "--out", str(target)])
        watch_job(jobs.status, st.session_state["infer_prepare_job"], "infer_prepare", lambda _: st.progress(
            0.5, text="Exporting the model to ONNX for this backend (checked against PyTorch) in its own process; "
                      "the demo starts when it is ready…"))
        st.stop()
loaded, runner = run_engine(_runner, run_dir, _checkpoint_key(run_dir), chosen, dtype)
st.caption(f"{how} · {dtype} · {loaded.checkpoint} (step {loaded.step}) · share: `/infer?run={run_name}`")

# ---- live demo -----------------------------------------------------------------------------------------
st.subheader("Live demo")
if loaded.task == "lm":
    prompt = st.text_area("Prompt", "Once upon a time", key="infer_prompt", height=80)
    d1, d2, d3 = st.columns(3)
    max_new = d1.number_input("New tokens", 1, 2000, 120, key="infer_max_new")
    temperature = d2.number_input("Temperature", 0.0, 5.0, 0.8, 0.1, key="infer_temperature", help="0: greedy")
    top_k = d3.number_input("Top-k (0: off)", 0, 100_000, 40, key="infer_top_k")
    if st.button("Generate", type="primary", key="infer_generate"):
        stream = run_engine(Stream, loaded, runner, prompt, max_new_tokens=int(max_new), temperature=float(temperature),
                            top_k=int(top_k) or None, backend_choice=how)
        for note in stream.notes:
            st.info(note)
        with st.container(border=True):
            st.write_stream(stream)
        res = stream.result()
        st.session_state["infer_last"] = res.to_dict()
        st.session_state["infer_last_shown"] = True  # drawn by the stream in this run
    last = st.session_state.get("infer_last")
    if last:
        if not st.session_state.pop("infer_last_shown", False):  # a later rerun: the text stays with its figures
            with st.container(border=True):
                st.text(last["text"])
        m = st.columns(4)
        m[0].metric("Time to first token", f"{last['time_to_first_token_s'] * 1e3:,.1f} ms")
        m[1].metric("Tokens/s", f"{last['tokens_per_s']:,.0f}", help="decode rate after the first token")
        m[2].metric("New tokens", f"{last['new_tokens']:,}")
        m[3].metric("Backend", last["backend"])
else:
    text = st.text_area("Text to classify", "what a wonderful, funny film", key="infer_text", height=80)
    if st.button("Classify", type="primary", key="infer_classify"):
        res = run_engine(classify, loaded, runner, text, how)
        for note in res.notes:
            st.info(note)
        fig = go.Figure(go.Bar(x=list(res.probabilities.values()), y=list(res.probabilities), orientation="h"))
        fig.update_layout(height=80 + 40 * len(res.probabilities), xaxis_title="probability", xaxis_range=[0, 1],
                          margin=dict(l=10, r=10, t=30, b=10), title=f"{res.label} ({res.latency_s * 1e3:.1f} ms)")
        st.plotly_chart(fig, width="stretch", key="infer_probs")

# ---- benchmark -----------------------------------------------------------------------------------------
st.subheader("Benchmark")
b1, b2, b3, b4 = st.columns([2, 1, 1, 1])  # the backends' chips need the room
picked = b1.multiselect("Backends", [b.name for b in backends],
                        default=[n for n in ("torch", "onnxruntime") if n in available], key="infer_bench_backends")
part = b2.selectbox("Part", ["model", "attention"], key="infer_bench_part")
batch = b3.number_input("Batch", 1, 256, 1, key="infer_bench_batch")
ctx = loaded.config.context
seq = b4.number_input("Sequence length", 1, ctx, min(ctx, 128), key="infer_bench_seq")
if st.button("Run benchmark", key="infer_bench_start", disabled=not picked):
    args = ["--run", run_dir, "--backends", ",".join(picked), "--batch", int(batch), "--dtype", dtype, "--part", part]
    if part == "attention":
        lens = sorted({max(1, ctx // 8), max(1, ctx // 4), max(1, ctx // 2), ctx})
        args += ["--seq-lens", ",".join(map(str, lens))]
    else:
        args += ["--seq-len", int(seq)]
    st.session_state["infer_bench_job"] = run_engine(jobs.start, "bench", args)


def _bench_progress(s: dict) -> None:
    done = sum(1 for e in s["progress"] if e.get("event") == "time")
    st.progress(min(0.95, 0.05 + 0.9 * done / max(1, len(picked) * (4 if part == "attention" else 1))),
                text=f"benchmarking in its own process… {s['progress'][-1] if s['progress'] else 'starting'}")


if st.session_state.get("infer_bench_job"):
    watch_job(jobs.status, st.session_state["infer_bench_job"], "infer_bench", _bench_progress)
done = st.session_state.get("infer_bench_done")
if done and done["status"] == "failed":
    st.error(done["error"])
elif done:
    result = done["result"]
    table = pd.DataFrame(result["results"])
    st.dataframe(table, hide_index=True, width="stretch", key="infer_bench_table")
    ok = table[table["p50_ms"].notna()] if "p50_ms" in table else table.iloc[0:0]
    left, right = st.columns(2)
    if not ok.empty:
        fig = go.Figure(go.Bar(x=ok["backend"], y=ok["p50_ms"], error_y=dict(
            type="data", symmetric=False, array=(ok["p90_ms"] - ok["p50_ms"]).tolist()), name="p50 (p90 bar)"))
        fig.update_layout(yaxis_title="latency (ms)", height=360, margin=dict(l=10, r=10, t=40, b=10),
                          title=f"{result['part']} latency, batch {result['batch']} × {result['seq_len']}")
        left.plotly_chart(fig, width="stretch", key="infer_latency_chart")
    if result.get("sweep"):
        sw = pd.DataFrame(result["sweep"])
        fig = go.Figure()
        for name, g in sw.groupby("backend"):
            fig.add_scatter(x=g["seq_len"], y=g["tflops"], mode="lines+markers", name=name)
        if result.get("roofline_tflops"):
            fig.add_hline(y=result["roofline_tflops"], line_dash="dash",
                          annotation_text=f"roofline {result['roofline_tflops']:.3g} TFLOP/s")
        fig.update_layout(xaxis_title="sequence length", yaxis_title="TFLOP/s", height=360,
                          margin=dict(l=10, r=10, t=40, b=10), title="attention core vs roofline")
        right.plotly_chart(fig, width="stretch", key="infer_roofline_chart")
        st.caption(f"Roofline: {result['roofline_basis']}")
    st.caption(f"Load average while measuring: {result.get('load_average')} · {result.get('machine')}")
    downloads("inference-benchmark", result, pd.DataFrame(result.get("sweep") or result["results"]), key="infer-bench")

# ---- ONNX download -------------------------------------------------------------------------------------
st.subheader("ONNX")
onnx_dir = Path(run_dir) / "onnx"
files = sorted(onnx_dir.glob("*.onnx")) if onnx_dir.is_dir() else []
e1, e2 = st.columns(2)
if e1.button("Export the model to ONNX (checked against PyTorch)", key="infer_export"):
    exp_dtype = dtype if dtype in ("fp32", "fp16", "int8") else "fp32"
    st.session_state["infer_export_job"] = run_engine(jobs.start, "export", ["--run", run_dir, "--dtype", exp_dtype])


if st.session_state.get("infer_export_job"):
    watch_job(jobs.status, st.session_state["infer_export_job"], "infer_export",
              lambda _: st.caption("Exporting in its own process (dynamo exporter, onnx.checker, parity run)…"))
exp = st.session_state.get("infer_export_done")
if exp and exp["status"] == "failed":
    st.error(exp["error"])
elif exp:
    r = exp["result"]
    st.success(f"{Path(r['path']).name}: {r['bytes'] / 1e6:.2f} MB, parity max |Δ| {r['parity_max_abs_err']:.2e} "
               f"(relative {r['parity_rel_err']:.2e})")
if files:
    pick = e2.selectbox("Exported files", files, format_func=lambda p: p.name, key="infer_onnx_pick")
    e2.download_button("Download ONNX", pick.read_bytes(), file_name=pick.name, mime="application/octet-stream",
                       on_click="ignore", key="infer_onnx_download")

# ---- predicted vs measured serving ---------------------------------------------------------------------
st.subheader("Serving: predicted vs measured")
cal = latest_serving_calibration()
if cal:
    st.caption(f"{cal['name']}: {cal['backend']} on {cal['device_name']}, {cal['prompt_tokens']} prompt tokens; "
               f"roofline from {cal['peak_tflops']:.3g} TFLOP/s and {cal['bandwidth_gbs']:.3g} GB/s. Implied "
               f"efficiencies: prefill {cal['implied_prefill_efficiency']:.2f}, decode {cal['implied_decode_efficiency']:.2f}.")
    levels = pd.DataFrame(cal["levels"] or [])
    if not levels.empty:
        st.dataframe(levels, hide_index=True, width="stretch")
        fig = go.Figure()
        fig.add_scatter(x=levels["concurrency"], y=levels["measured_decode_tokens_per_s"], mode="lines+markers",
                        name="measured")
        fig.add_scatter(x=levels["concurrency"], y=levels["predicted_decode_tokens_per_s"], mode="lines+markers",
                        name="predicted (efficiency 1)")
        if "calibrated_predicted_decode_tokens_per_s" in levels:
            fig.add_scatter(x=levels["concurrency"], y=levels["calibrated_predicted_decode_tokens_per_s"],
                            mode="lines+markers", name="predicted (calibrated)", line=dict(dash="dot"))
        fig.update_layout(xaxis_title="concurrent sequences", yaxis_title="decode tokens/s", height=340,
                          margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(fig, width="stretch", key="infer_serve_chart")
else:
    st.info("No serving calibration yet: measure this machine's prefill and decode beside the estimator's prediction.")
if not access.demo_mode() and st.button("Calibrate serving on this machine", key="infer_calibrate"):
    st.session_state["infer_cal_job"] = run_engine(jobs.start, "calibrate",
                                                   ["--serve", "--run", run_dir, "--backend", chosen])


if st.session_state.get("infer_cal_job"):
    watch_job(jobs.status, st.session_state["infer_cal_job"], "infer_cal", lambda _: st.caption(
        "Calibrating serving in its own process (prefill and decode at 1, 2, 4, 8 sequences)…"))
cal_done = st.session_state.pop("infer_cal_done", None)
if cal_done and cal_done["status"] == "failed":
    st.session_state["infer_cal_error"] = cal_done["error"]
if st.session_state.get("infer_cal_error"):
    st.error(st.session_state.pop("infer_cal_error"))
