"""The Inference page's model-folder section: a Hugging Face model folder (under the workspace's models/,
typed, or a lab run that fine-tuned one) on a backend: streamed demo (chat template for chat models),
backends benchmarked and serving calibrated in their own processes (engine.infer.jobs)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import access, workspace
from engine.infer import jobs
from engine.infer.capabilities import list_backends
from engine.infer.hf_infer import HF_BACKENDS, is_exported, make_hf_runner, model_folder, stream
from engine.lab.hf_model import models_under
from ui.widgets import run_engine, watch_job


def _hf_runs(registry) -> dict[str, str]:
    frame = registry.list_runs(kind="train")
    return {f"run: {r['name']}": r["run_dir"] for r in frame.to_dict(orient="records")
            if (r.get("config") or {}).get("kind") == "hf" and r["status"] in ("finished", "stopped")}


@st.cache_resource(show_spinner="Loading the model folder on its backend…", max_entries=4)
def _runner(folder: str, backend: str, precision: str):
    return make_hf_runner(folder, backend, precision)


def _job(key: str, text: str) -> dict | None:
    if st.session_state.get(f"{key}_job"):
        watch_job(jobs.status, st.session_state[f"{key}_job"], key, lambda _: st.caption(text))
    done = st.session_state.get(f"{key}_done")
    if done and done["status"] == "failed":
        st.error(done["error"])
        return None
    return done["result"] if done else None


def model_folder_section(registry) -> None:
    runs = _hf_runs(registry)
    folders = {f"models/{p.name}": str(p) for p in models_under(workspace.models_dir())}
    choices = {**runs, **folders}
    c1, c2, c3 = st.columns([2, 2, 1])
    picked = c1.selectbox("Fine-tuned run or model folder", ["(type a path)", *choices], key="hfi_pick")
    typed = c1.text_input("Or type a model folder's path", "", key="hfi_folder",
                          help="a folder with config.json, safetensors and a tokenizer; when given, it is used "
                               "instead of the pick above")
    available = {b.name for b in list_backends() if b.available}
    backend = c2.selectbox("Backend", [b for b in HF_BACKENDS if b in available], key="hfi_backend")
    precision = c3.selectbox("Precision", ["fp32", "int8", "int4"] if backend != "torch" else ["fp32"], key="hfi_dtype")
    if typed.strip():
        folder = str(run_engine(model_folder, typed.strip(), None))
    elif picked in runs:
        folder = str(run_engine(model_folder, None, runs[picked]))
    elif picked in folders:
        folder = folders[picked]
    else:
        st.info(f"Type a model folder, or put one under {workspace.models_dir()}, or fine-tune one on the Model lab page.")
        return
    provider = "cuda" if backend != "onnxruntime" and backend != "torch" else "cpu"
    if backend != "torch" and not is_exported(folder, precision, provider):
        if not st.session_state.get("hfi_export_job"):
            st.session_state["hfi_export_job"] = run_engine(jobs.start, "export", [
                "--hf-model", folder, "--dtype", precision, "--provider", provider])
        _job("hfi_export", "Exporting to ONNX with onnxruntime-genai's builder (checked against transformers) in its "
                           "own process; the demo starts when it is ready…")
        st.stop()
    runner, loaded = run_engine(_runner, folder, backend, precision)
    st.caption(f"{folder} · {loaded.folder.model_type} · {backend} · {precision}"
               + (" · chat template" if loaded.chat else ""))

    st.subheader("Live demo")
    prompt = st.text_area("Prompt", "Tell me about the cat.", key="hfi_prompt", height=80)
    d1, d2 = st.columns(2)
    max_new = d1.number_input("New tokens", 1, 2000, 64, key="hfi_max_new")
    temperature = d2.number_input("Temperature", 0.0, 5.0, 0.0, 0.1, key="hfi_temperature", help="0: greedy")
    if st.button("Generate", type="primary", key="hfi_generate"):
        stats: dict = {}
        with st.container(border=True):
            st.write_stream(stream(runner, loaded.tokenizer, prompt, chat=loaded.chat, max_new_tokens=int(max_new),
                                   temperature=float(temperature), stats=stats))
        m = st.columns(3)
        m[0].metric("New tokens", stats.get("new_tokens", 0))
        m[1].metric("Time to first token", f"{stats.get('time_to_first_token_s', 0) * 1e3:.0f} ms")
        m[2].metric("Decode", f"{stats['tokens_per_s']:.1f} tok/s" if stats.get("tokens_per_s") else "–",
                    help="new tokens after the first ÷ the model's time for them, one sequence (the time this page "
                         "spends drawing them is left out); the benchmark below compares backends and batch sizes")

    st.subheader("Benchmark and serving calibration")
    b1, b2 = st.columns(2)
    if b1.button("Benchmark torch vs onnxruntime (fp32, int8)", key="hfi_bench", disabled=access.demo_mode()):
        st.session_state["hfi_bench_job"] = run_engine(jobs.start, "bench", [
            "--hf-model", folder, "--backends", "torch,onnxruntime", "--dtypes", "fp32,int8", "--batches", "1,8",
            "--seq-len", "128", "--iters", "2"])
    if b2.button("Calibrate serving (measured vs predicted)", key="hfi_cal", disabled=access.demo_mode()):
        st.session_state["hfi_cal_job"] = run_engine(jobs.start, "calibrate", [
            "--serve", "--hf-model", folder, "--backend", backend])
    bench = _job("hfi_bench", "Benchmarking in its own process (exports first where needed)…")
    if bench:
        st.dataframe(pd.DataFrame(bench["decode"]), hide_index=True, width="stretch")
        st.dataframe(pd.DataFrame(bench["prefill"]), hide_index=True, width="stretch")
        for s in bench.get("skipped") or []:
            st.caption(f"{s['backend']} {s['dtype']}: {s['reason']}")
    cal = _job("hfi_cal", "Calibrating serving in its own process (prefill and decode at 1, 2, 4, 8 sequences)…")
    if cal:
        st.dataframe(pd.DataFrame(cal["levels"]), hide_index=True, width="stretch")
        st.caption(f"Peak {cal['peak_tflops']:.3f} TFLOP/s ({cal['peak_basis']}); bandwidth {cal['bandwidth_gbs']:.1f} "
                   f"GB/s ({cal['bandwidth_basis']}); predictions from estimate serve for the architecture of "
                   "config.json (engine/estimate/hf_config.py).")
