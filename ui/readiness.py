"""Widgets of the readiness page: the company-profile form (per-session state, one message under each bad
field), the scenario controls, verdict cards and figures. The engine does the work
(``engine.readiness``); this module only turns widgets into a profile mapping and results into elements.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from engine import catalog
from engine.estimate import models as model_specs
from engine.estimate.apis import catalog_offers
from engine.readiness.areas import TITLES
from engine.readiness.profile import PRICE_FIELDS, TRAINING_METHODS, Profile, example_profile
from engine.units import format_count
from ui.navigation import PAGES, link
from ui.widgets import money

PRICE_LABELS = {"price_per_request_usd": "Per request", "price_per_million_output_tokens_usd": "Per million output tokens",
                "subscription_usd_per_user_month": "Subscription per user per month"}
STATUS_BADGES = {"ready": ("green", ":material/check_circle:"), "at risk": ("orange", ":material/warning:"),
                 "blocked": ("red", ":material/block:"), "no data yet": ("gray", ":material/hourglass_empty:")}
_MD = re.compile(r"([\\`*_{}\[\]()#+!|<>~$:-])")


def plain(text: Any) -> str:
    """Text from users or artifacts for st.markdown/st.caption: Markdown syntax escaped, so a name like
    ``[x](javascript:...)`` or ``**`` shows as typed (Streamlit never renders HTML without
    unsafe_allow_html, which no page uses)."""
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def load_into_state(profile: Profile, version: int | None = None) -> None:
    """Put a profile's values into this session's widget keys (before the widgets are drawn)."""
    ss = st.session_state
    kind, price = profile.pricing
    ss.update({
        "rd_company": profile.company, "rd_cash": float(profile.cash_usd), "rd_burn": float(profile.monthly_burn_usd),
        "rd_dau": float(profile.daily_active_users), "rd_growth": float(profile.monthly_growth * 100),
        "rd_rpu": float(profile.requests_per_user_per_day), "rd_prompt": int(profile.prompt_tokens),
        "rd_output": int(profile.output_tokens), "rd_p95": float(profile.p95_latency_s),
        "rd_serving_model": profile.serving_model, "rd_serving_gpu": profile.serving_gpu, "rd_price_kind": kind,
        "rd_price": float(price), "rd_peak": float(profile.peak_factor), "rd_serving_api": profile.serving_api or "",
    })
    ss["rd_training_rows"] = [{"model": t.model, "method": t.method, "tokens": format_count(t.tokens, 12), "gpu": t.gpu,
                               "gpus": int(t.gpus)} for t in profile.training]
    ss["rd_training_version"] = ss.get("rd_training_version", 0) + 1  # a fresh editor shows the loaded rows


def ensure_state() -> None:
    if "rd_cash" not in st.session_state:
        load_into_state(example_profile())
    st.session_state.setdefault("rd_serving_api", "")


def profile_form(disabled: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form; returns (profile mapping, placeholders by field name for the messages under each field)."""
    ensure_state()
    holders: dict[str, Any] = {}
    models, gpus = model_specs.model_ids(), list(catalog.gpus())

    def under(name: str) -> None:
        holders[name] = st.empty()

    st.text_input("Company (shown on the report)", key="rd_company", max_chars=200)
    c = st.columns(3)
    with c[0]:
        st.number_input("Cash on hand (USD)", min_value=-1e13, max_value=1e13, step=10_000.0, key="rd_cash", format="%.0f")
        under("cash_usd")
        st.number_input("Monthly burn without compute (USD)", min_value=-1e11, max_value=1e11, step=1_000.0,
                        key="rd_burn", format="%.0f")
        under("monthly_burn_usd")
        st.number_input("Daily active users", min_value=0.0, max_value=1e10, step=100.0, key="rd_dau", format="%.0f")
        under("daily_active_users")
        st.number_input("Monthly growth (%)", min_value=-100.0, max_value=1e6, step=1.0, key="rd_growth",
                        help="10 means 10% more daily users each month")
        under("monthly_growth")
    with c[1]:
        st.number_input("Requests per user per day", min_value=0.0, max_value=1e6, step=1.0, key="rd_rpu")
        under("requests_per_user_per_day")
        st.number_input("Prompt tokens per request", min_value=1, max_value=10_000_000, step=100, key="rd_prompt")
        under("prompt_tokens")
        st.number_input("Output tokens per request", min_value=1, max_value=10_000_000, step=50, key="rd_output")
        under("output_tokens")
        st.number_input("Target p95 latency (s)", min_value=0.0, max_value=1e5, step=0.5, key="rd_p95")
        under("p95_latency_s")
    with c[2]:
        st.selectbox("Serving model", models, key="rd_serving_model")
        under("serving_model")
        st.selectbox("Serving GPU", gpus, key="rd_serving_gpu", format_func=lambda g: catalog.gpus()[g].name)
        under("serving_gpu")
        st.selectbox("Serve through", ["", *catalog_offers()], key="rd_serving_api",
                     format_func=lambda i: i or "self-hosting (rent the GPUs above)",
                     help="an API offer at its list price; the verdict compares it with self-hosting the model above")
        under("serving_api")
        st.selectbox("Price", PRICE_FIELDS, key="rd_price_kind", format_func=PRICE_LABELS.get)
        st.number_input("Price (USD)", min_value=-1e6, max_value=1e7, step=0.001, key="rd_price", format="%.4f")
        under("price")
        st.number_input("Peak-to-average load", min_value=0.0, max_value=100.0, step=0.5, key="rd_peak",
                        help="servers are sized for the average load times this (defaults.toml: 2)")
        under("peak_to_average")
    st.markdown("**Planned training runs** (model preset; pretrain from scratch, or fine-tune it in full, with LoRA "
                "or QLoRA; tokens like 200B or 40M; GPU type, GPU count)")
    frame = pd.DataFrame(st.session_state["rd_training_rows"], columns=["model", "method", "tokens", "gpu", "gpus"])
    edited = st.data_editor(
        frame, num_rows="dynamic", key=f"rd_training_{st.session_state['rd_training_version']}", width="stretch",
        disabled=disabled, column_config={
            "model": st.column_config.SelectboxColumn("model", options=models, required=True),
            "method": st.column_config.SelectboxColumn("method", options=list(TRAINING_METHODS), default="pretrain",
                                                       help="pretrain: 6·N·D from scratch; full / lora / qlora: "
                                                            "the Fine-tuning page's estimator (rank 16, all linear "
                                                            "layers, gradient checkpointing)"),
            "tokens": st.column_config.TextColumn("tokens", required=True),
            "gpu": st.column_config.SelectboxColumn("gpu", options=gpus, required=True),
            "gpus": st.column_config.NumberColumn("gpus", min_value=1, step=1, required=True)})
    under("training")
    ss = st.session_state
    rows = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in edited.to_dict("records")]
    rows = [r for r in rows if any(v not in (None, "") for v in r.values())]
    data: dict[str, Any] = {
        "company": ss["rd_company"] or "", "cash_usd": ss["rd_cash"], "monthly_burn_usd": ss["rd_burn"],
        "daily_active_users": ss["rd_dau"], "monthly_growth": ss["rd_growth"] / 100.0,
        "requests_per_user_per_day": ss["rd_rpu"], "prompt_tokens": ss["rd_prompt"], "output_tokens": ss["rd_output"],
        "p95_latency_s": ss["rd_p95"], "serving_model": ss["rd_serving_model"], "serving_gpu": ss["rd_serving_gpu"],
        ss["rd_price_kind"]: ss["rd_price"], "peak_to_average": ss["rd_peak"],
        "serving_api": ss.get("rd_serving_api") or None,
        "training": [{**r, "gpus": int(r["gpus"]) if isinstance(r.get("gpus"), (int, float)) else r.get("gpus")}
                     for r in rows],
    }
    return data, holders


def ranges_editor() -> dict[str, Any]:
    """The Monte Carlo ranges as an editable table (factors on the profile's values), defaults from the
    catalog; returns Range objects by key (the engine checks them: low <= most likely <= high)."""
    from engine.readiness.montecarlo import Range, default_ranges

    defaults = default_ranges()
    frame = pd.DataFrame([{"key": r.key, "assumption": r.label, "distribution": r.distribution, "low": r.low,
                           "most likely": r.mode, "high": r.high, "source": r.source} for r in defaults.values()])
    edited = st.data_editor(
        frame, key="rd_ranges", hide_index=True, width="stretch", num_rows="fixed",
        disabled=["key", "assumption", "source"],
        column_config={"key": None,
                       "distribution": st.column_config.SelectboxColumn("distribution", options=["triangular", "uniform"],
                                                                        required=True),
                       "low": st.column_config.NumberColumn("low", min_value=0.01, max_value=100, required=True),
                       "most likely": st.column_config.NumberColumn("most likely", min_value=0.01, max_value=100,
                                                                    required=True),
                       "high": st.column_config.NumberColumn("high", min_value=0.01, max_value=100, required=True),
                       "source": st.column_config.TextColumn("source", width="large")})
    return {row["key"]: Range(key=row["key"], label=row["assumption"], distribution=row["distribution"],
                              low=float(row["low"]), mode=float(row["most likely"]), high=float(row["high"]),
                              source=row["source"], date=defaults[row["key"]].date)
            for row in edited.to_dict("records")}


def show_errors(errors: dict[str, str], holders: dict[str, Any]) -> None:
    for name, message in errors.items():
        target = holders.get(name)
        (target.error if target is not None else st.error)(message, icon=":material/error:")


def verdict_cards(areas: list[dict[str, Any]]) -> None:
    pages = {info.url_path: info for info in PAGES}
    for col, area in zip(st.columns(len(areas)), areas):
        with col, st.container(border=True):
            color, icon = STATUS_BADGES.get(area["status"], ("gray", None))
            st.markdown(f"**{TITLES.get(area['id'], area['id'])}**")
            st.badge(area["status"], color=color, icon=icon)
            st.caption(plain(area["reason"]))
            if area.get("page") in pages:
                link(pages[area["page"]])


def key_figures(r: dict[str, Any]) -> None:
    def usd(v):
        return "–" if v is None else (("-" + money(-v)) if v < 0 else money(v))

    runway = r.get("runway_months_after_training")
    cash_out = r.get("cash_out_month")
    row1 = st.columns(4)
    row1[0].metric("Training cost", usd(r.get("training_cost_usd")),
                   help=f"{r['training_share_of_cash']:.0%} of cash" if r.get("training_share_of_cash") is not None else None)
    row1[1].metric("Runway after training", "unlimited" if runway is None else f"{runway:.1f} months",
                   help="(cash − training) ÷ (burn + first month's serving cost), with no revenue")
    through_api = r.get("serving_requests_per_s_per_replica") is None
    row1[2].metric("Serving GPUs, month 1", f"{r['serving_gpus_needed']:,}",
                   help=f"none rented: served through the {r['serving_speed_source']}" if through_api else
                   f"{r['serving_requests_per_s']:.3g} requests/s at peak ({r['assumptions']['peak_to_average']:g}× "
                   f"the average); {r['serving_requests_per_s_per_replica']:.3g} requests/s per replica of "
                   f"{r['serving_gpus_per_replica']} GPU(s), from the {r['serving_speed_source']}")
    row1[3].metric("Serving cost per month", usd(r.get("serving_cost_per_month_usd")))
    row2 = st.columns(4)
    row2[0].metric("Revenue per month", usd(r.get("revenue_per_month_usd")))
    row2[1].metric("Gross margin per request", usd(r.get("gross_margin_per_request_usd")),
                   help=f"per user per month: {usd(r.get('gross_margin_per_user_month_usd'))}")
    be = r.get("break_even_users")
    row2[2].metric("Break-even daily users", "never at this price" if be is None else f"{be:,}",
                   help="the fewest daily users whose revenue covers burn and serving in a month")
    row2[3].metric("Cash runs out", f"after month {r['horizon_months']}" if cash_out is None else f"month {cash_out}",
                   help=f"the first month that ends below zero, within a {r['horizon_months']}-month horizon")


COMPARE_LABELS = {"training_cost_usd": "Training cost", "runway_months_after_training": "Runway after training (months)",
                  "serving_gpus_needed": "Serving GPUs, month 1", "serving_cost_per_month_usd": "Serving cost per month",
                  "revenue_per_month_usd": "Revenue per month", "gross_margin_per_request_usd": "Gross margin per request",
                  "break_even_users": "Break-even daily users", "cash_out_month": "Cash runs out (month)"}


def compare_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """engine.readiness.store.compare's rows, formatted for reading (money through ``money``)."""
    def fmt(key: str, value: Any) -> str:
        if value is None:
            return "–" if key != "cash_out_month" else "not within 60"
        if key.endswith("_usd"):
            return ("-" + money(-value)) if value < 0 else money(value)
        if key == "runway_months_after_training":
            return f"{value:.1f}"
        return f"{value:,}"

    return pd.DataFrame([{**{k: fmt(r["figure"], v) for k, v in r.items() if k != "figure"},
                          "figure": COMPARE_LABELS.get(r["figure"], r["figure"])} for r in rows]).set_index("figure")


def quantile_table(r: dict[str, Any]) -> pd.DataFrame:
    def usd(v):
        return "–" if v is None else (("-" + money(-v)) if v < 0 else money(v))

    labels = {"training_cost_usd": ("Training cost", usd), "serving_cost_per_month_usd": ("Serving cost per month", usd),
              "runway_months_after_training": ("Runway after training (months)", lambda v: "–" if v is None else f"{v:.1f}"),
              "gross_margin_per_request_usd": ("Gross margin per request", usd)}
    rows = []
    for key, (label, fmt) in labels.items():
        q = (r.get("quantiles") or {}).get(key)
        if q:
            rows.append({"figure": label, "P10": fmt(q["p10"]), "P50": fmt(q["p50"]), "P90": fmt(q["p90"])})
    return pd.DataFrame(rows)
