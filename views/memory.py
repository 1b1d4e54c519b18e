"""Memory per GPU: weights, gradients, optimizer, activations and KV cache under a parallelism plan."""

import streamlit as st

from engine.catalog import defaults
from engine.charts import memory_breakdown
from engine.estimate.dtypes import KV_DTYPES, TRAIN_DTYPES, WEIGHT_DTYPES
from engine.estimate.memory import ATTENTION, OPTIMIZER_STATE_BYTES, RECOMPUTE, MemoryInput, estimate_memory
from engine.estimate.sensitivity import DEFAULT_PLANS, memory_by_plan
from engine.artifacts import latest_calibration
from engine.units import format_bytes
from ui.widgets import downloads, gpu_picker, model_picker, run_engine

st.title("Memory")
st.caption("Model states per ZeRO (Rajbhandari et al. 2020), activations per Korthikanti et al. 2022, "
           "KV cache aware of GQA, MLA and sliding windows. Sizes in binary units (1 GiB = 2³⁰ B), the units GPU "
           "memory comes in: an \"80GB\" H100 holds 80 GiB.")

c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("Workload")
    spec = model_picker(key="mem-model")
    mode = st.radio("Mode", ["train", "infer"], horizontal=True, key="mode",
                    format_func=lambda m: "Training" if m == "train" else "Inference")
    batch = st.number_input("Micro-batch per GPU" if mode == "train" else "Concurrent sequences", 1, 100_000, 1, key="batch")
    seq_len = st.number_input("Sequence length", 1, 10_000_000, spec.context, key=f"mem-seq-{spec.id}")
with c2:
    st.subheader("Precision")
    dtypes = TRAIN_DTYPES if mode == "train" else WEIGHT_DTYPES
    dtype = st.selectbox("Weights dtype", dtypes, index=dtypes.index("bf16"), key=f"dtype-{mode}")
    kv = None
    if mode == "infer":
        kv = st.selectbox("KV-cache dtype", KV_DTYPES, index=KV_DTYPES.index("bf16"), key="kv")
    optimizer = st.selectbox("Optimizer", list(OPTIMIZER_STATE_BYTES), key="optimizer", disabled=mode != "train",
                             help="AdamW keeps an fp32 master copy, momentum and variance: 12 bytes/param (ZeRO's K)")
    gpu = gpu_picker(key="mem-gpu")
with c3:
    st.subheader("Parallelism")
    p1, p2 = st.columns(2)
    dp = p1.number_input("Data parallel (DP)", 1, 1_000_000, 8 if mode == "train" else 1, key=f"dp-{mode}")
    zero = p2.selectbox("ZeRO stage", [0, 1, 2, 3], index=3, key="zero", disabled=mode != "train")
    tp = p1.number_input("Tensor parallel (TP)", 1, 1024, 1, key="tp")
    pp = p2.number_input("Pipeline parallel (PP)", 1, 1024, 1, key="pp")
    a1, a2 = st.columns(2)
    attention = a1.selectbox("Attention kernel", ATTENTION, index=0, key="attention", disabled=mode != "train",
                             help="flash (FlashAttention / PyTorch SDPA) never stores the a·s² scores; eager does "
                                  "(Korthikanti et al.'s 5·a·s²·b bytes per layer)")
    recompute = a2.selectbox("Activation recompute", RECOMPUTE, index=0, key="mem-recompute", disabled=mode != "train",
                             help="selective recomputes the attention scores (matters for eager attention); "
                                  "full keeps only each layer's input")
    sp = st.checkbox("Sequence parallelism with TP", True, key="sp", disabled=mode != "train")
    overhead = st.number_input("Fixed overhead per GPU (GiB)", 0.0, 100.0, defaults()["overhead_gib"], 0.25,
                               key="overhead", help="CUDA context, library workspaces, allocator fragmentation")

inp = MemoryInput(model=spec, mode=mode, batch=int(batch), seq_len=int(seq_len), dtype=dtype, kv_dtype=kv,
                  dp=int(dp), zero=int(zero), tp=int(tp), pp=int(pp), recompute=recompute,
                  sequence_parallel=sp, optimizer=optimizer, gpu=gpu, overhead_gib=overhead, attention=attention)
est = run_engine(estimate_memory, inp)

st.divider()
if est.fits:
    st.success(f"Fits on {gpu.name}: {format_bytes(est.total_bytes_per_gpu + est.overhead_bytes)} of "
               f"{format_bytes(gpu.memory_bytes)} per GPU (incl. {format_bytes(est.overhead_bytes)} overhead), "
               f"{est.gpus:,} GPU{'s' if est.gpus != 1 else ''} in the plan.")
else:
    st.warning(f"Does not fit on {gpu.name}: needs {format_bytes(est.total_bytes_per_gpu + est.overhead_bytes)} per GPU, "
               f"has {format_bytes(gpu.memory_bytes)}. Try ZeRO-3, more TP/PP, recompute or a smaller batch.")
m = st.columns(6)
m[0].metric("Total per GPU", format_bytes(est.total_bytes_per_gpu), help="without the fixed overhead")
m[1].metric("Weights", format_bytes(est.weights_bytes))
m[2].metric("Gradients", format_bytes(est.gradients_bytes))
m[3].metric("Optimizer", format_bytes(est.optimizer_bytes))
m[4].metric("Activations", format_bytes(est.activations_bytes))
m[5].metric("KV cache", format_bytes(est.kv_cache_bytes))
st.caption(f"Convention: {est.bytes_per_param_convention}. Most loaded pipeline stage: {est.pipeline_stage}.")

yours = ({"plan": "Your plan", "dp": inp.dp, "zero": inp.zero, "tp": inp.tp, "pp": inp.pp, "recompute": inp.recompute},)
if mode == "train":
    plans = yours + DEFAULT_PLANS
else:
    plans = yours + tuple({"plan": f"TP={t} {d}", "tp": t, "dtype": d}
                          for d in ("bf16", "fp8", "int4") for t in (1, 2, 4, 8) if spec.n_heads % t == 0)
table = run_engine(memory_by_plan, inp, plans)
st.plotly_chart(memory_breakdown(table, gpu.memory_bytes), width="stretch")
with st.expander("Breakdown by plan (table, bytes)"):
    st.dataframe(table, hide_index=True, width="stretch")
downloads("memory-estimate", est.to_dict(), table)

calibration = latest_calibration()
if calibration and calibration.get("peak_memory_bytes") and calibration.get("predicted_memory_bytes"):
    with st.expander("Predicted vs measured on this machine (the model lab's latest calibration)"):
        measured_parts, predicted_parts = calibration.get("measured_parts"), calibration.get("predicted_parts")
        on_cpu = calibration.get("device") == "cpu"
        if on_cpu and not measured_parts:
            # recorded before calibrate counted tensors: its figure is the process's RSS rise, not comparable
            st.info("This calibration measured only the rise of the process's RSS, which is not what the estimator "
                    "predicts. Run the calibration again to compare weights, gradients, optimizer and activations.")
            st.metric("Process RSS rise (not comparable)", format_bytes(calibration["peak_memory_bytes"]))
        else:
            ratio = calibration["peak_memory_bytes"] / calibration["predicted_memory_bytes"]
            c = st.columns(3)
            c[0].metric("Predicted (this estimator)", format_bytes(calibration["predicted_memory_bytes"]))
            c[1].metric("Measured", format_bytes(calibration["peak_memory_bytes"]),
                        help=calibration.get("measured_basis") or None)
            c[2].metric("Measured / predicted", f"{ratio:.2f}×")
            if measured_parts and predicted_parts:
                names = {"weights_bytes": "Weights", "gradients_bytes": "Gradients", "optimizer_bytes": "Optimizer",
                         "activations_bytes": "Activations"}
                st.dataframe([{"part": label, "predicted": format_bytes(predicted_parts[key]),
                               "measured": format_bytes(measured_parts[key]),
                               "measured / predicted": (f"{measured_parts[key] / predicted_parts[key]:.2f}×"
                                                        if predicted_parts[key] else "–")}
                              for key, label in names.items() if key in measured_parts and key in predicted_parts],
                             hide_index=True, width="stretch")
            if calibration.get("rss_rise_bytes"):
                st.metric("Process RSS rise (not comparable)", format_bytes(calibration["rss_rise_bytes"]),
                          help="how far the calibration process's peak RSS rose once the model was built: it also "
                               "holds allocator slack, thread pools and PyTorch's own buffers, which the estimator "
                               "does not model")
        how = ("torch.cuda.max_memory_allocated (the allocator's peak); the parts are counted from the tensors"
               if not on_cpu else
               "the tensors themselves, part by part: weights, gradients and AdamW states, and the activations "
               "autograd saved for backward (parameters excluded)")
        st.caption(f"{calibration['preset']} preset, batch {calibration['batch_size']} × {calibration['context']} tokens, "
                   f"{calibration['dtype']} on {calibration['device_name']}. Measured: {how}. "
                   + ("With mixed precision the estimator counts 16-bit weights and gradients and puts the fp32 "
                      "master copy in the optimizer (ZeRO's convention); autocast keeps fp32 weights and gradients "
                      "instead, so compare the total." if calibration.get("dtype") in ("bf16", "fp16") else ""))
