"""Model lab: train a small Transformer on a built-in corpus or your own data, live. Training runs in
its own process (engine.lab.jobs); this page starts it, polls the run registry, and draws the curves."""

import json
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import workspace
from engine.errors import ValidationError
from engine.lab import jobs
from engine.lab.corpora import CORPORA
from engine.lab.sources import describe_file, list_uploads
from engine.lab.presets import PRESETS
from engine.lab.tokenizer import TOKENIZER_KINDS
from engine.lab.device import resolve_device
from engine.lab.trainer import TrainConfig
from engine.store import ACTIVE, Registry
from engine.tabular.formats import UPLOAD_TYPES
from engine.units import format_bytes, format_bytes_short, format_count
from ui.evaluation import evaluation_section
from ui.access import demo_notice
from ui.widgets import run_engine, stop_without_torch, watch_job

stop_without_torch("Model lab")

STATUS_ICONS = {"queued": "⏳", "running": "🟢", "stopping": "🟡", "finished": "✅", "stopped": "⏸️",
                "failed": "❌", "diverged": "💥"}

st.title("Model lab")
st.caption("Train a small Transformer on your data, on this machine, with live curves. Runs keep going in "
           "their own process when you switch pages or close the tab; stop, resume, compare and delete them here.")

demo = demo_notice("uploads, training, stop, resume, delete and calibration")
registry = Registry()
jobs.refresh(registry)

# ---- start a run -------------------------------------------------------------------------------------
with st.expander("Start a training run", expanded=not st.session_state.get("lab_run")):
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Data**")
        source = st.radio("Data source", ["Built-in corpus", "Uploaded dataset", "Upload a file"], key="lab_source")
        data = sample = None
        task = "lm"
        if source == "Built-in corpus":
            sample = st.selectbox("Corpus", list(CORPORA), key="lab_sample",
                                  format_func=lambda n: f"{n} ({'classification' if CORPORA[n].task == 'classify' else 'language model'})")
            st.caption(CORPORA[sample].description)
            task = CORPORA[sample].task
        else:
            if source == "Upload a file":
                up = st.file_uploader("Dataset", type=UPLOAD_TYPES, key="lab_upload", disabled=demo,
                                      help="text, JSONL, CSV/TSV or Parquet; also listed on the data-checks page")
                if up is not None:
                    data = str(run_engine(workspace.save_upload, up.name, up.getvalue()))
            else:
                uploads = list_uploads()
                if uploads:
                    data = str(st.selectbox("Dataset", uploads, format_func=lambda p: p.name, key="lab_upload_pick",
                                            help="files uploaded here or on the data-checks page"))
                else:
                    st.info("No uploads yet: upload one here or on the data-checks page.")
            if data:
                about = run_engine(describe_file, data)
                if about.get("encoding_note"):
                    st.warning(about["encoding_note"], icon=":material/translate:")
                if about.get("sheet"):
                    st.caption(f"Sheet {about['sheet']!r} (the first of {len(about['sheets'])}) is read.")
            task = st.radio("Task", ["lm", "classify"], horizontal=True, key="lab_task",
                            format_func=lambda t: "language model" if t == "lm" else "classification")
            text_col = st.text_input("Text column", "", key="lab_text", help="blank: inferred") or None
            label_col = (st.text_input("Label column", "", key="lab_label", help="blank: inferred") or None
                         if task == "classify" else None)
    with c2:
        st.markdown("**Model**")
        preset_id = st.selectbox("Preset", list(PRESETS), key="lab_preset", format_func=lambda p: PRESETS[p].label)
        preset = PRESETS[preset_id]
        tokenizer = st.selectbox("Tokenizer", TOKENIZER_KINDS, key=f"lab_tokenizer_{task}",
                                 index=TOKENIZER_KINDS.index("bpe" if task == "classify" else "byte"),
                                 help="byte: 256 bytes, no training; char: the characters seen; bpe: trained "
                                      "locally on your data with the tokenizers library")
        params = preset.config(258).expected_params()
        st.caption(f"{preset.n_layers} layers · {preset.n_heads} heads ({preset.n_kv_heads} KV) · "
                   f"{preset.d_model} wide · context {preset.context} · {preset.ffn} · {preset.position} · "
                   f"≈{format_count(params)} parameters with the byte vocabulary")
    with c3:
        st.markdown("**Training**")
        max_steps = st.number_input("Steps", 1, 1_000_000, preset.max_steps, key=f"lab_steps_{preset_id}")
        batch = st.number_input("Batch size (sequences)", 1, 4096, preset.batch_size, key=f"lab_batch_{preset_id}")
        lr = st.number_input("Peak learning rate", 1e-6, 1.0, preset.lr, format="%.1e", key=f"lab_lr_{preset_id}")
        device = st.selectbox("Device", ["auto", "cpu", "cuda"], key="lab_device")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="lab_seed")
        name = st.text_input("Run name", "", key="lab_name", help="blank: the preset's name")
    if st.button("Start training", type="primary", key="lab_start", disabled=demo or source != "Built-in corpus" and not data):
        run_engine(resolve_device, device)  # no CUDA here: one error line now, not a run that fails later
        cfg = TrainConfig(
            data=data, sample=sample, task=task,
            text_col=None if sample else text_col, label_col=None if sample else label_col,
            tokenizer=tokenizer, preset=preset_id, max_steps=int(max_steps), batch_size=int(batch), lr=float(lr),
            device=device, seed=int(seed),
        )
        st.session_state["lab_run"] = run_engine(jobs.start_training, cfg, name.strip() or None, registry=registry)
        st.rerun()


# ---- fine-tune a Hugging Face model folder (engine/lab/hf_train.py) ---------------------------------------
with st.expander("Fine-tune a model folder (Hugging Face: Llama, Mistral, Qwen2/3, Gemma 2, Phi-3)"):
    from engine.lab.hf_model import models_under
    from engine.lab.hf_train import HFTrainConfig

    found = [str(p) for p in models_under(workspace.models_dir())]
    f1, f2, f3 = st.columns(3)
    with f1:
        st.markdown("**Model folder**")
        picked = st.selectbox("Found under the workspace's models/", ["(type a path)"] + found, key="hf_pick",
                              help=f"model folders in {workspace.models_dir()}")
        typed = st.text_input("Or type a model folder's path", "", key="hf_folder",
                              help="config.json, model.safetensors (or shards with an index), tokenizer.json; when "
                                   "given, it is used instead of the pick above")
        hf_folder = typed.strip() or (picked if picked != "(type a path)" else "")
        method = st.radio("Method", ["lora", "full", "qlora"], horizontal=True, key="hf_method",
                          help="QLoRA needs a CUDA GPU with bitsandbytes")
        rank = st.number_input("LoRA rank", 1, 1024, 8, key="hf_rank", disabled=method == "full")
        hf_target = st.selectbox("LoRA target", ["all-linear", "attention", "qv"], key="hf_target",
                                 disabled=method == "full")
    with f2:
        st.markdown("**Data**")
        hf_source = st.radio("Data source", ["Built-in corpus", "Uploaded dataset"], key="hf_source")
        hf_data = hf_sample = prompt_col = response_col = None
        if hf_source == "Built-in corpus":
            hf_sample = st.selectbox("Corpus", [k for k, v in CORPORA.items() if v.task == "lm"], key="hf_sample")
        else:
            ups = list_uploads()
            hf_data = str(st.selectbox("Dataset", ups, format_func=lambda p: p.name, key="hf_upload")) if ups else None
            if not ups:
                st.info("No uploads yet: upload one above or on the data-checks page.")
            prompt_col = st.text_input("Prompt column", "", key="hf_prompt_col",
                                       help="instruction data: the loss falls on the response only") or None
            response_col = st.text_input("Response column", "", key="hf_response_col") or None
    with f3:
        st.markdown("**Training**")
        hf_steps = st.number_input("Fine-tuning steps", 1, 1_000_000, 50, key="hf_steps")
        hf_batch = st.number_input("Fine-tuning batch (sequences)", 1, 4096, 4, key="hf_batch")
        hf_context = st.number_input("Fine-tuning context (tokens)", 8, 131072, 128, key="hf_context")
        hf_device = st.selectbox("Fine-tuning device", ["auto", "cpu", "cuda"], key="hf_device")
        hf_name = st.text_input("Fine-tuning run name", "", key="hf_name", help="blank: the folder's name and the method")
    if st.button("Start fine-tuning", type="primary", key="hf_start", disabled=demo or not hf_folder):
        hf_cfg = HFTrainConfig(hf_model=hf_folder, method=method, rank=int(rank), target=hf_target, data=hf_data,
                               sample=hf_sample, prompt_col=prompt_col, response_col=response_col,
                               max_steps=int(hf_steps), batch_size=int(hf_batch), context=int(hf_context),
                               device=hf_device)
        st.session_state["lab_run"] = run_engine(jobs.start_hf_training, hf_cfg, hf_name.strip() or None, registry=registry)
        st.rerun()


# ---- the selected run, live --------------------------------------------------------------------------
def _curves(frames: dict[str, pd.DataFrame], metric: str = "loss", view: str = "") -> go.Figure:
    """Loss curves. ``view`` names the chart's view (plotly's uirevision): while it stays the same, a redraw
    with new points keeps the user's zoom, pan and legend choices instead of resetting them."""
    fig = go.Figure()
    for name, df in frames.items():
        train = df.dropna(subset=["train_loss"])
        val = df.dropna(subset=["val_loss"])
        label = f"{name} " if len(frames) > 1 else ""
        if metric == "loss" and not train.empty:
            fig.add_scatter(x=train["step"], y=train["train_loss"], mode="lines", name=f"{label}train",
                            opacity=0.6 if len(frames) == 1 else 0.35)
        if not val.empty:
            fig.add_scatter(x=val["step"], y=val["val_loss"], mode="lines+markers", name=f"{label}validation")
    fig.update_layout(xaxis_title="step", yaxis_title="loss (nats/token)", height=380,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2),
                      uirevision=view or "|".join(frames))
    return fig


def _seconds(s: float | None) -> str:
    return "–" if s is None else (f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s")


def _hf_step_figures(summary: dict) -> None:
    """Predicted beside measured step time and memory of a finished fine-tuning run (engine/lab/hf_loop.py)."""
    if "measured_step_s" not in summary:
        return
    n = st.columns(4)
    n[0].metric("Step time, measured", _seconds(summary.get("measured_step_s")),
                help="mean wall time of an optimizer step, the process's first step left out")
    n[1].metric("Step time, predicted", _seconds(summary.get("predicted_step_s")),
                help="the fine-tuning estimator's model FLOPs per step ÷ " + (summary.get("step_time_basis") or "–"))
    pred_mem = summary.get("predicted_memory_bytes")
    n[2].metric("Model memory, predicted", format_bytes_short(pred_mem) if pred_mem else "–",
                help="the fine-tuning estimator's weights, adapters, gradients, optimizer states and activations. "
                     "On a CPU the Memory above is the whole process's peak RSS (Python, PyTorch and transformers "
                     "included), not the same quantity")
    ratio = (summary["measured_step_s"] / summary["predicted_step_s"]
             if summary.get("measured_step_s") and summary.get("predicted_step_s") else None)
    n[3].metric("Step time, measured ÷ predicted", f"{ratio:.3g}×" if ratio else "–",
                help="step time; above 1: slower than the FLOPs alone predict (a step's fixed cost, small matrices)")
    st.caption(f"Predicted step time: {summary.get('step_time_basis') or '–'}.")


def _run_view(name: str) -> None:
    try:
        run = registry.get_run(name)
    except ValidationError:
        st.session_state.pop("lab_run", None)
        return
    metrics = registry.metrics(name)
    resolved = (run.get("config") or {}).get("resolved") or {}
    summary = run.get("summary") or {}
    max_steps = resolved.get("max_steps") or 0
    step = int(metrics["step"].max()) if not metrics.empty else 0
    status = run["status"]
    st.subheader(f"{STATUS_ICONS.get(status, '')} {name}: {status}")
    if status in ("failed", "diverged") and run.get("error"):
        st.error(run["error"])
    if max_steps:
        st.progress(min(1.0, step / max_steps), text=f"step {step:,} of {max_steps:,}")
    last = metrics.ffill().iloc[-1] if not metrics.empty else None
    m = st.columns(6)
    m[0].metric("Train loss", f"{last['train_loss']:.3f}" if last is not None and pd.notna(last["train_loss"]) else "–")
    m[1].metric("Validation loss", f"{last['val_loss']:.3f}" if last is not None and pd.notna(last["val_loss"]) else "–")
    tps = (summary.get("tokens_per_s") if status not in ACTIVE else None) or (  # ended: its steady mean, as in the table
        last["tokens_per_s"] if last is not None and pd.notna(last["tokens_per_s"]) else None)
    m[2].metric("Tokens/s", format_count(tps) if tps else "–")
    eta = None
    if status == "running" and last is not None and step and max_steps and pd.notna(last["elapsed_s"]):
        eta = last["elapsed_s"] / step * (max_steps - step)
    m[3].metric("ETA", f"{eta / 60:.1f} min" if eta is not None else "–")
    # A finished run's summary has the final figures (on a CPU, MFU only exists there: its denominator,
    # the measured matmul peak, is taken at the end); a live run shows its latest logged step.
    mem = summary.get("peak_memory_bytes") or (last["mem_bytes"] if last is not None and pd.notna(last["mem_bytes"])
                                               else None)
    on_cuda = (summary.get("device") or resolved.get("device")) == "cuda"
    m[4].metric("Memory", format_bytes_short(mem) if mem else "–",
                help=(f"{format_bytes(mem)}: " if mem else "")
                + ("peak allocated by PyTorch on the GPU (torch.cuda.max_memory_allocated)" if on_cuda
                   else "peak resident memory (RSS) of the training process"))
    hf_run = (run.get("config") or {}).get("kind") == "hf"
    if hf_run:  # a fine-tuned model folder: no MFU is computed; its trainable count and step times instead
        trainable = summary.get("trainable_params") or (run.get("config") or {}).get("trainable_params")
        m[5].metric("Trainable params", format_count(trainable) if trainable else "–",
                    help="what PEFT trains (LoRA adapters), or every weight (full)")
        _hf_step_figures(summary)
    elif last is not None and pd.notna(last.get("val_acc")):
        m[5].metric("Val accuracy", f"{last['val_acc']:.1%}")
    else:
        mfu = summary.get("mfu") if summary.get("mfu") is not None else (
            last["mfu"] if last is not None and pd.notna(last["mfu"]) else None)
        m[5].metric("MFU", f"{mfu:.1%}" if mfu is not None else "–",
                    help=("Model FLOPs utilization (PaLM, Chowdhery et al. 2022, App. B): model FLOP/s achieved ÷ "
                          + (summary.get("mfu_basis") or "the peak")
                          + ("" if mfu is not None or on_cuda else ". On a CPU it is computed when the run ends")))
    if not metrics.empty:
        # Streamlit 1.67 keys a plotly chart's frontend by a hash of its figure, so a redraw with new points
        # mounts a new chart and drops any zoom (uirevision only holds across in-place updates). While the
        # run is live, "Follow live" off freezes the chart at the step it was switched off: the figure
        # stays the same, the chart is not remounted, and a zoom or pan stays while the metrics above
        # keep updating.
        follow = True
        if status in ACTIVE:
            follow = st.toggle("Follow live", True, key=f"lab_follow_{name}",
                               help="switch off to zoom and pan: the chart holds still while the run goes on")
        frozen_key = f"lab_frozen_{name}"
        if follow or status not in ACTIVE:
            st.session_state.pop(frozen_key, None)
        else:
            metrics = st.session_state.setdefault(frozen_key, metrics)
        st.plotly_chart(_curves({name: metrics}, view=f"run:{name}"), width="stretch", key=f"lab_curve_{name}")
    if status in ACTIVE:
        if st.button("Stop (checkpoint and end)", key=f"lab_stop_{name}", disabled=demo):
            run_engine(jobs.stop_run, name, registry=registry)
            st.toast("Stop requested: the run checkpoints and ends after this step.")
    samples = registry.samples(name, limit=3)
    if samples:
        with st.expander("Samples from the model", expanded=True):
            for s in samples:
                st.caption(f"step {s['step']}")
                st.code(s["text"], language=None, wrap_lines=True)
    if summary.get("stopped_reason"):
        st.caption(f"Ended: {summary['stopped_reason']}")


def _live_status(name: str) -> dict:
    """The run for watch_job: running while its registry row is active (then the page draws it once more)."""
    try:
        active = registry.get_run(name)["status"] in ACTIVE
    except ValidationError:
        active = False
    return {"status": "running" if active else "done"}


selected = st.session_state.get("lab_run")
if selected:
    try:
        active = registry.get_run(selected)["status"] in ACTIVE
    except ValidationError:
        active, selected = False, None
        st.session_state.pop("lab_run", None)
    if selected and active:
        watch_job(_live_status, selected, "lab_live", lambda _: _run_view(selected))
    elif selected:
        _run_view(selected)

# ---- calibration: measured tokens/s, FLOP/s, MFU and memory on this machine --------------------------
with st.expander("Calibrate this machine (measured MFU for the cost estimator)"):
    k1, k2, k3 = st.columns(3)
    cal_preset = k1.selectbox("Preset", list(PRESETS), key="lab_cal_preset", format_func=lambda p: PRESETS[p].name)
    cal_device = k2.selectbox("Device", ["auto", "cpu", "cuda"], key="lab_cal_device")
    k3.write("")
    if k3.button("Run calibration", key="lab_cal_start", disabled=demo,
                 help="a few timed training steps on random tokens, in their own process"):
        run_engine(resolve_device, cal_device)  # no CUDA here: one error line now, not a silent child exit
        st.session_state["lab_cal_job"] = run_engine(jobs.start_calibration, cal_preset, cal_device, registry=registry)
        st.toast("Calibration started: a few training steps, then the result appears here.")
    calibrations = registry.list_runs(kind="calibrate")
    if st.session_state.get("lab_cal_job") or calibrations["status"].isin(ACTIVE).any():
        # polled while the process lives (it registers itself only once torch has loaded); then the table
        watch_job(lambda folder: {"status": "running" if jobs.calibration_running(folder, registry=registry) else "done"},
                  st.session_state.get("lab_cal_job"), "lab_cal",
                  lambda _: st.caption("Calibrating: timed training steps in their own process…"))
    if not calibrations.empty:
        rows = []
        for _, r in calibrations.iterrows():
            s = r["summary"] or {}
            rows.append({"when": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])), "status": r["status"],
                         "preset": s.get("preset") or (r["config"] or {}).get("preset"), "device": s.get("device_name"),
                         "dtype": s.get("dtype"), "batch": s.get("batch_size"), "tokens/s": s.get("tokens_per_s"),
                         "achieved TFLOP/s": s.get("achieved_tflops"), "MFU": s.get("mfu"),
                         "measured memory": format_bytes(s["peak_memory_bytes"]) if s.get("peak_memory_bytes") else None,
                         "predicted memory": format_bytes(s["predicted_memory_bytes"]) if s.get("predicted_memory_bytes") else None,
                         "process RSS rise": format_bytes(s["rss_rise_bytes"]) if s.get("rss_rise_bytes") else None,
                         "error": r["error"]})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("MFU on a GPU is against its datasheet peak (engine/catalog/gpus.toml); on a CPU against a measured "
                   "fp32 matmul peak. Predicted memory is the memory estimator's figure for the same model and batch; "
                   "measured memory is the GPU allocator's peak, or on a CPU the weights, gradients, optimizer states "
                   "and saved activations counted from the tensors (the process's RSS rise, which also holds "
                   "allocator slack and thread pools, is shown apart). "
                   "The Training cost page offers the latest measured MFU.")

# ---- all runs: compare, resume, delete, generate -----------------------------------------------------
runs = registry.list_runs(kind="train")
st.subheader("Runs")
if runs.empty:
    took = PRESETS["tiny"].cpu_run_time
    st.info("No runs yet. Start one above" + (f": the tiny preset's default run took {took} on 2 CPU cores when "
                                             "measured (longer while the machine is busy)." if took else "."))
    st.stop()


def _row(r) -> dict:
    s, c = r["summary"] or {}, r["config"] or {}
    hf = c.get("hf_train") if c.get("kind") == "hf" else None  # a fine-tuned model folder: its name and method
    preset = f"{Path(hf['hf_model']).name} · {hf['method']}" if hf and hf.get("hf_model") else c.get("preset")
    return {"run": r["name"], "status": r["status"], "preset": preset, "steps": s.get("steps"),
            "train loss": s.get("train_loss"), "val loss": s.get("val_loss"), "best val": s.get("best_val_loss"),
            "val acc": s.get("val_accuracy"), "tokens/s": s.get("tokens_per_s"), "params": s.get("params"),
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))}


table = pd.DataFrame([_row(r) for _, r in runs.iterrows()])
st.dataframe(table, hide_index=True, width="stretch")
st.download_button("Runs (CSV)", table.to_csv(index=False), file_name="runs.csv", mime="text/csv",
                   on_click="ignore", key="lab_dl_runs")

compare = st.multiselect("Compare runs", list(runs["name"]), default=list(runs["name"][:2]), key="lab_compare")
if compare:
    frames = {n: registry.metrics(n) for n in compare}
    frames = {n: f for n, f in frames.items() if not f.empty}
    if frames:
        st.plotly_chart(_curves(frames, view="compare"), width="stretch", key="lab_compare_chart")
        st.download_button("Curves (CSV)", pd.concat([f.assign(run=n) for n, f in frames.items()]).to_csv(index=False),
                           file_name="curves.csv", mime="text/csv", on_click="ignore", key="lab_dl_curves")

a1, a2 = st.columns(2)
with a1:
    target = st.selectbox("Run", list(runs["name"]), key="lab_target")
    target_run = registry.get_run(target)
    b1, b2, b3 = st.columns(3)
    if b1.button("Show", key="lab_show"):
        st.session_state["lab_run"] = target
        st.rerun()
    more = b2.number_input("Resume to step", 1, 1_000_000,
                           int(((target_run.get("config") or {}).get("resolved") or {}).get("max_steps") or 100),
                           key=f"lab_resume_to_{target}")
    if b2.button("Resume", key="lab_resume", disabled=demo or target_run["status"] in ACTIVE):
        st.session_state["lab_run"] = run_engine(jobs.resume_run, target, max_steps=int(more), registry=registry)
        st.rerun()
    if b3.button("Delete", key="lab_delete", disabled=demo or target_run["status"] in ACTIVE,
                 help="removes the run's folder (checkpoints) and its registry rows"):
        run_engine(jobs.delete_run, target, registry=registry)
        if st.session_state.get("lab_run") == target:
            st.session_state.pop("lab_run")
        st.rerun()
with a2:
    is_lm = ((target_run.get("config") or {}).get("model") or {}).get("n_classes", 0) == 0
    if is_lm and target_run["status"] not in ("queued",):
        prompt = st.text_input("Prompt", "", key="lab_prompt", help="blank: sample from nothing")
        temperature = st.slider("Temperature", 0.0, 2.0, 0.8, 0.1, key="lab_temp")
        if st.button("Generate", key="lab_generate"):
            with st.spinner("Sampling from the latest checkpoint"):
                if (target_run.get("config") or {}).get("kind") == "hf":  # a fine-tuned model folder
                    from engine.infer.hf_infer import generate_hf

                    out = run_engine(generate_hf, run=target_run["run_dir"], prompt=prompt, max_new_tokens=100,
                                     temperature=temperature)
                else:
                    out = run_engine(jobs.generate, target, prompt, max_new_tokens=300, temperature=temperature)
            st.code(out.get("text", json.dumps(out)), language=None, wrap_lines=True)

evaluation_section(target_run, key="lab_eval")  # engine.lab.evaluate: sklearn metrics, in its own process
