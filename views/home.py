"""Overview: the founder's plan in one place (the saved scenario last used on the Readiness page, or the
usual plan as an example: fine-tune an open model, serve a few thousand users): training or fine-tuning,
serving self-hosted vs API, runway and verdicts; then what this workspace has checked, trained and
measured, with links into each tool."""

import streamlit as st

from engine.readiness import readiness
from engine.catalog import get_gpu, lab_preset_file
from engine.units import format_count, format_wall_time
from engine.datacheck.runner import estimate_sentence
from ui.currency import current_currency
from ui.navigation import PAGES, link
from ui.overview import plan_summary


def _tiny_run_time() -> str | None:
    """The tiny preset's measured default run ("about 74 s") from the catalog row: the lab's presets
    module imports torch, which would cost the Overview's first render more than a second."""
    row = next((r for r in lab_preset_file()["preset"] if r["id"] == "tiny"), {})
    return format_wall_time(row["cpu_run_s"]) if row.get("cpu_run_s") else None

st.title("Preflight")
st.markdown("**Before you spend money on GPUs:** what will this model cost to train and to serve, "
            "and on which GPUs does it fit? Every number cites its source and every assumption is editable.")

plan = plan_summary()

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
        gpu = get_gpu(plan["profile"]["training"][0]["gpu"] if plan["profile"]["training"] else
                      plan["profile"]["serving_gpu"])
        st.caption(f"Not calibrated yet: the lab measures tokens/s and MFU on this machine "
                   f"(assumed here: {gpu.typical_mfu:.0%} on {gpu.name}).")
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
st.caption("Also on the command line: `python -m engine estimate breakeven --model llama-3-8b --gpu h100-sxm "
           "--prompt-tokens 1000 --output-tokens 250 --requests-per-s 2 --api deepseek/deepseek-chat --json`")
