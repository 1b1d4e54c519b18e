"""Overview: budget, data, model and serving in one place: a one-glance estimate for a model on a GPU
fleet, then what this workspace has checked, trained and measured, with links into each tool."""

import streamlit as st

from engine.estimate.memory import MemoryInput, estimate_memory
from engine.readiness import readiness
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training
from engine.catalog import lab_preset_file
from engine.units import format_bytes, format_count, format_duration_hours, format_wall_time
from engine.datacheck.runner import estimate_sentence
from ui.currency import current_currency
from ui.navigation import PAGES, link
from ui.widgets import gpu_picker, model_picker, money, run_engine


def _tiny_run_time() -> str | None:
    """The tiny preset's measured default run ("about 74 s") from the catalog row: the lab's presets
    module imports torch, which would cost the Overview's first render more than a second."""
    row = next((r for r in lab_preset_file()["preset"] if r["id"] == "tiny"), {})
    return format_wall_time(row["cpu_run_s"]) if row.get("cpu_run_s") else None

st.title("Preflight")
st.markdown("**Before you spend money on GPUs:** what will this model cost to train and to serve, "
            "and on which GPUs does it fit? Every number cites its source and every assumption is editable.")

c1, c2, c3 = st.columns(3)
with c1:
    spec = model_picker(key="home-model", default="llama-3-8b")
with c2:
    gpu = gpu_picker(key="home-gpu")
with c3:
    n = st.number_input("GPUs", 1, 1_000_000, 64, key="home-gpus")

tokens = spec.train_tokens or 20 * spec.params_total
train = run_engine(estimate_training, TrainingInput(model=spec, tokens=tokens, gpu=gpu, gpus=int(n)))
mem = run_engine(estimate_memory, MemoryInput(model=spec, batch=1, dp=int(n), zero=3, gpu=gpu))
# Serve on the smallest tensor-parallel group that holds the weights (capped at one 8-GPU node).
fit_gpus = run_engine(estimate_serving, ServeInput(model=spec, gpu=gpu)).min_gpus_to_fit
serve = run_engine(estimate_serving, ServeInput(model=spec, gpu=gpu, gpus=min(8, fit_gpus),
                                                prompt_tokens=1000, output_tokens=250))

st.subheader(f"{spec.name} on {int(n):,} × {gpu.name}")
m = st.columns(4)
m[0].metric("Train on " + format_count(tokens) + " tokens", money(train.cost_usd),
            help=f"{format_count(train.gpu_hours)} GPU-hours at {train.mfu:.0%} MFU")
m[1].metric("Wall clock", format_duration_hours(train.wall_clock_hours))
m[2].metric("Training memory / GPU", format_bytes(mem.total_bytes_per_gpu),
            help="ZeRO-3, flash attention, micro-batch 1 at the preset's context",
            delta="fits" if mem.fits else "does not fit", delta_color="normal" if mem.fits else "inverse",
            delta_arrow="off")
m[3].metric("Serve: cost / M output tokens", money(serve.cost_per_million_output_tokens_usd),
            help=f"{serve.gpus} GPU(s) per replica, {serve.concurrency} concurrent sequences, 1000 in / 250 out")

st.divider()
st.subheader("Readiness")
pages = {info.url_path: info for info in PAGES}
st.caption("Runway, margin, break-even users and how sure each figure is, from your own company numbers, "
           "with a report to send:")
link(pages["readiness"])
ready = readiness()
r1, r2, r3 = st.columns(3)
with r1, st.container(border=True):
    st.markdown("**Data**")
    data = ready.data
    if data:
        st.metric(f"Readiness of {data['file']}", f"{data['score']} / 100",
                  help=f"{data['rows']:,} rows, {data['problems']} problem(s) found")
        for f in data["top_findings"]:
            st.caption(f"{f['severity'].upper()}: {f['title']}")
        if data.get("estimate"):
            st.caption(estimate_sentence(data["estimate"], current_currency()))
    else:
        st.caption("No dataset checked yet: upload one, or try a built-in sample.")
    link(pages["data"])
with r2, st.container(border=True):
    st.markdown("**Model**")
    run = ready.training
    if run:
        loss = run.get("best_val_loss") or run.get("val_loss")
        st.metric(f"Run {run['name']} ({run['status']})", f"{loss:.3f}" if loss is not None else "–",
                  help="best validation loss (nats/token)")
        if run.get("tokens_per_s"):
            st.caption(f"{format_count(run['tokens_per_s'])} tokens/s on {run.get('device_name') or 'this machine'}, "
                       f"{run.get('steps') or 0:,} steps of the {run['preset']} preset")
        if run.get("error"):
            st.caption(f"Error: {run['error']}")
        if run.get("shipped"):
            st.caption("The demo model shipped with Preflight (trained on the built-in stories corpus): try it on the "
                       "Inference page, or train your own in the Model lab.")
            link(pages["infer"])
    else:
        took = _tiny_run_time()
        st.caption("No model trained yet: the tiny preset learns a built-in corpus"
                    + (f" ({took} for its 300 steps on a 2-core CPU, measured)." if took else "."))
    link(pages["lab"])
with r3, st.container(border=True):
    st.markdown("**Measured efficiency**")
    cal = ready.calibration
    if cal:
        st.metric(f"{cal['preset']} on {cal['device_name']}", f"{cal['mfu']:.1%} MFU" if cal.get("mfu") else "–",
                  help=cal.get("mfu_basis"))
        st.caption(f"{format_count(cal['tokens_per_s'])} tokens/s, {cal['achieved_tflops']:.3g} TFLOP/s achieved")
    else:
        st.caption(f"Not calibrated yet: the lab measures tokens/s and MFU on this machine "
                   f"(assumed here: {train.mfu:.0%} on {gpu.name}).")
    link(pages["train"])

st.divider()
st.subheader("Tools")
tools = [info for info in PAGES if info.url_path]
per_row = 4
for start in range(0, len(tools), per_row):
    for col, info in zip(st.columns(per_row), tools[start:start + per_row]):
        with col:
            link(info)
            st.caption(info.blurb)
st.caption("Also on the command line: `python -m engine estimate train --model llama-3-8b --tokens 15T --gpu h100-sxm --gpus 1024 --json`")
