"""Compute-optimal sizing: the Chinchilla loss, N_opt and D_opt for a FLOP or dollar budget."""

import streamlit as st

from engine.charts import loss_vs_compute
from engine.estimate.scaling import DEFAULT_FIT, FITS, OptimalInput, estimate_optimal
from engine.estimate.sensitivity import loss_frontier, loss_iso_params
from engine.units import format_count, format_sci
from ui.currency import current_currency, price_input
from ui.widgets import downloads, gpu_picker, money, quantity_input, run_engine

st.title("Compute-optimal")
st.caption("L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2). Default constants: the Besiroglu et al. 2024 "
           "refit, which recovers Chinchilla's 70B / 1.4T at its own budget; the rounded published ones give ~32B.")

c1, c2 = st.columns(2)
with c1:
    kind = st.radio("Budget in", ["Dollars", "FLOPs"], horizontal=True, key="budget-kind")
    fits = list(FITS)
    fit = st.selectbox("Fit", fits, index=fits.index(DEFAULT_FIT), key="fit", format_func=lambda f: FITS[f].source)
with c2:
    gpu = gpu_picker(key="opt-gpu")
    if kind == "Dollars":
        cur = current_currency()
        budget = quantity_input(f"Budget ({cur.code})", format_count(cur.from_usd(1e6)), key=f"budget-{cur.code}",
                                help=f"in {cur.name}, e.g. 1M or 2.5e6")
        budget = cur.to_usd(budget) if budget is not None else None
        flops = None
    else:
        flops = quantity_input("Compute budget (FLOPs)", "5.76e23", key="budget-flops")
        budget = None
    g1, g2 = st.columns(2)
    mfu = g1.slider("MFU", 0.05, 0.8, float(gpu.typical_mfu), 0.01, key=f"opt-mfu-{gpu.id}")
    price = price_input("Price per GPU-hour", gpu.price_usd_per_hour, key=f"opt-price-{gpu.id}", container=g2,
                        min_usd=0.01)
if budget is None and flops is None:
    st.stop()

est = run_engine(estimate_optimal, OptimalInput(flops=flops, budget_usd=budget, gpu=gpu, mfu=mfu,
                                                 price_usd_per_hour=price, fit=fit))
st.divider()
m = st.columns(6)
m[0].metric("Optimal parameters", format_count(est.params))
m[1].metric("Optimal tokens", format_count(est.tokens))
m[2].metric("Predicted loss", f"{est.predicted_loss:.3f}", help="nats per token on MassiveText-like data")
m[3].metric("Tokens per parameter", f"{est.tokens_per_param:.1f}")
m[4].metric("Compute (FLOPs)", format_sci(est.flops))
m[5].metric("Cost", money(est.cost_usd or 0.0), help=f"{format_count(est.gpu_hours or 0)} GPU-hours on {gpu.name}")

low, high = min(1e18, est.flops / 100), max(1e26, est.flops * 100)
frontier = run_engine(loss_frontier, fit, low, high)
iso = run_engine(loss_iso_params, fit, [1e8, 1e9, 1e10, 1e11, 1e12], low, high)
st.plotly_chart(loss_vs_compute(frontier, iso, {"flops": est.flops, "loss": est.predicted_loss}), width="stretch")
downloads("compute-optimal", est.to_dict(), frontier)
