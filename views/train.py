"""Training cost: FLOPs, GPU-hours, wall clock, dollars, energy and CO2 for a training run."""

import streamlit as st

from engine.catalog import defaults
from engine.charts import cost_time_by_gpu, cost_vs_size
from engine.estimate.sensitivity import cost_by_size, training_by_gpu
from engine.estimate.training import PRECISIONS, RECOMPUTE, TrainingInput, estimate_training
from engine.artifacts import latest_calibration
from engine.units import format_count, format_duration_hours, format_sci
from ui.currency import current_currency, money_table, price_input
from ui.widgets import downloads, gpu_picker, model_picker, money, quantity_input, run_engine

st.title("Training cost")
st.caption("Model FLOPs 6·N·D plus attention, as PaLM's MFU accounting (Chowdhery et al. 2022, App. B); "
           "every assumption below is editable.")

c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("Model & data")
    sizing = st.radio("Size the model by", ["Preset", "Parameter count"], horizontal=True, key="sizing")
    spec = params = None
    if sizing == "Preset":
        spec = model_picker()
        published = f"published: {format_count(spec.train_tokens)} tokens" if spec.train_tokens else None
        tokens = quantity_input("Training tokens", format_count(spec.train_tokens or 20 * spec.params_total, 4),
                                key=f"tokens-{spec.id}", help=published)
        seq_len = st.number_input("Sequence length", 1, 1_000_000, spec.context, key=f"seq-{spec.id}",
                                  help="sets the attention term 12·L·H·Q·T")
    else:
        params = quantity_input("Parameters", "7B", key="params")
        tokens = quantity_input("Training tokens", "2T", key="tokens-bare")
        seq_len = None
with c2:
    st.subheader("Hardware")
    gpu = gpu_picker()
    n_gpus = st.number_input("Number of GPUs", 1, 10_000_000, 256, key="gpus")
    precision = st.selectbox("Precision", PRECISIONS, key="precision")
    recompute = st.selectbox("Activation recompute", RECOMPUTE, index=0, key="recompute",
                             help="full recompute runs the forward pass twice: hardware FLOPs 8·N·D instead of 6·N·D")
with c3:
    st.subheader("Efficiency & prices")
    calibration = latest_calibration()
    bases = ["MFU", "Achieved TFLOP/s", "Published GPU-hours"] + (["Measured MFU"] if calibration and calibration.get("mfu") else [])
    basis = st.radio("Throughput from", bases, horizontal=True, key="basis",
                     help="Measured MFU: the model lab's latest calibration on this machine")
    mfu = achieved = gpu_hours = None
    if basis == "Measured MFU":
        mfu = float(calibration["mfu"])
        st.caption(f"{mfu:.1%} measured by `calibrate` ({calibration['preset']} preset, {calibration['dtype']}) on "
                   f"{calibration['device_name']}; {calibration['mfu_basis']}. On another GPU type or a larger model "
                   "it is an assumption.")
    elif basis == "MFU":
        mfu = st.slider("MFU (model FLOPs utilization)", 0.05, 0.80, float(gpu.typical_mfu_for(precision)), 0.01,
                        key=f"mfu-{gpu.id}-{precision}", help="of the dense peak at the chosen precision")
    elif basis == "Achieved TFLOP/s":
        achieved = st.number_input("Achieved hardware TFLOP/s per GPU", 1.0, float(gpu.peak_flops(precision) / 1e12),
                                   float(round(gpu.peak_flops(precision) / 1e12 * 0.45)), key=f"ach-{gpu.id}-{precision}")
    else:
        gpu_hours = quantity_input("Published GPU-hours", format_count(spec.published_gpu_hours, 4)
                                   if spec and spec.published_gpu_hours else "100K", key="gpu-hours")
    price = price_input("Price per GPU-hour", gpu.price_usd_per_hour, key=f"price-{gpu.id}")
    pue = st.number_input("PUE", 1.0, 3.0, defaults()["pue"], 0.05, key="pue",
                          help="data-centre power usage effectiveness: energy = GPU-hours × TDP × PUE")
    grid = st.number_input("Grid intensity (kg CO₂e/kWh)", 0.0, 2.0, defaults()["grid_kg_co2_per_kwh"], 0.01, key="grid")

if tokens is None or (sizing != "Preset" and params is None) or (basis == "Published GPU-hours" and gpu_hours is None):
    st.stop()

inp = TrainingInput(model=spec, params=params, tokens=tokens, gpu=gpu, gpus=int(n_gpus), seq_len=seq_len,
                    mfu=mfu, achieved_tflops=achieved, gpu_hours=gpu_hours, price_usd_per_hour=price,
                    precision=precision, recompute=recompute, pue=pue, grid_kg_per_kwh=grid)
est = run_engine(estimate_training, inp)

st.divider()
m = st.columns(4)
m[0].metric("Cost", money(est.cost_usd), help=f"{format_count(est.gpu_hours)} GPU-hours × {money(est.price_usd_per_hour)}")
m[1].metric("Wall clock", format_duration_hours(est.wall_clock_hours), help=f"on {est.gpus:,} × {gpu.name}")
m[2].metric("GPU-hours", format_count(est.gpu_hours))
m[3].metric("Total FLOPs", format_sci(est.flops_total), help=f"{format_sci(est.flops_per_token)} FLOPs per token")
m = st.columns(4)
m[0].metric("MFU", f"{est.mfu:.1%}", help=f"basis: {est.basis}; hardware FLOPs utilization {est.hfu:.1%}")
m[1].metric("Throughput", f"{format_count(est.tokens_per_s)} tok/s", help="all GPUs together")
m[2].metric("Energy", f"{est.energy_kwh / 1e3:,.1f} MWh", help=f"GPU board power: TDP {gpu.tdp_w:g} W × PUE {est.pue:g}; hosts and network via PUE")
m[3].metric("CO₂e", f"{est.co2_kg / 1e3:,.1f} t", help=f"{est.grid_kg_per_kwh:g} kg per kWh")

by_gpu = run_engine(training_by_gpu, inp)
left, right = st.columns(2)
left.plotly_chart(cost_time_by_gpu(by_gpu, gpu.id, current_currency()), width="stretch")
sizes = [1e8, 3e8, 1e9, 3e9, 1e10, 3e10, 1e11, 3e11, 1e12]
by_size = run_engine(cost_by_size, inp, sizes, [20.0, 100.0, 1000.0])
right.plotly_chart(cost_vs_size(by_size, {"params": est.params, "cost_usd": est.cost_usd}, current_currency()),
                   width="stretch")
with st.expander("Cost by GPU type (table)"):
    st.dataframe(money_table(by_gpu), hide_index=True, width="stretch")
downloads("training-estimate", est.to_dict(), by_gpu)
