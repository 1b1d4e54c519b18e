"""The Serving page's "Self-host or API" section: API offers (catalog + the user's own prices) against
self-hosting the page's model on the page's GPUs, through ``engine.estimate.breakeven``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.charts import breakeven_chart
from engine.errors import ValidationError
from engine.estimate.apis import offers, offers_from_rows, open_model_spec
from engine.estimate.breakeven import SELF_HOST, STEP_NOTE, BreakevenInput, estimate_breakeven
from engine.estimate.models import models
from ui.currency import current_currency, money_table
from ui.widgets import downloads, money, run_engine

CUSTOM_COLUMNS = ["id", "currency", "input_per_million", "output_per_million", "cached_input_per_million", "open_model"]


def _pick_model(model_id: str) -> None:
    """'Self-host the same model': the page's model picker takes the offer's open model on the next run."""
    st.session_state["serve-model"] = model_id
    st.session_state["serve-model-edit"] = False


def _custom_offers() -> tuple:
    st.caption("Your own prices (a negotiated or quoted rate) per million tokens, in the row's currency; a row "
               "with a catalog id replaces that offer. The same rows work as `--api-file` (TOML, JSON or CSV).")
    frame = pd.DataFrame(st.session_state.get("be-custom-rows", []), columns=CUSTOM_COLUMNS)
    edited = st.data_editor(frame, num_rows="dynamic", key="be-custom", width="stretch", column_config={
        "id": st.column_config.TextColumn("id (provider/model)"),
        "currency": st.column_config.SelectboxColumn("currency", options=["USD", "CNY", "EUR"], default="USD"),
        "input_per_million": st.column_config.NumberColumn("input / M", min_value=0.0, format="%.4f"),
        "output_per_million": st.column_config.NumberColumn("output / M", min_value=0.0, format="%.4f"),
        "cached_input_per_million": st.column_config.NumberColumn("cached input / M", min_value=0.0, format="%.4f"),
        "open_model": st.column_config.SelectboxColumn("open model", options=list(models()))})
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in edited.to_dict("records")]
    rows = [r for r in rows if any(v not in (None, "") for v in r.values())]
    return tuple(run_engine(offers_from_rows, rows, "your price, row"))


def breakeven_section(spec, gpu, gpus: int | None, dtype: str, price: float, prompt: int, output: int,
                      rps: float, serve=None) -> None:
    st.subheader("Self-host or API")
    st.caption("What a month of this traffic costs through an API (its list price × your tokens, converted at the "
               "catalog's dated exchange rate) against renting the GPUs above and serving the model yourself.")
    with st.expander("Your own API prices"):
        extra = _custom_offers()
    known = offers(extra)
    same = [o.id for o in known.values() if o.open_model == spec.id]
    default = [i for i in ["deepseek/deepseek-chat", *same[:2], *(o.id for o in extra)] if i in known]
    seen = st.session_state.setdefault("be-seen-custom", [])
    new = [o.id for o in extra if o.id not in seen]
    if new and "be-apis" in st.session_state:  # a price just entered joins the comparison
        st.session_state["be-apis"] = list(dict.fromkeys([*st.session_state["be-apis"], *new]))
    seen.extend(new)
    if "be-apis" in st.session_state:  # a deleted row of your own leaves the comparison
        kept = [i for i in st.session_state["be-apis"] if i in known]
        if kept != st.session_state["be-apis"]:
            st.session_state["be-apis"] = kept
    st.session_state.setdefault("be-apis", list(dict.fromkeys(default)))  # the widget's first value
    c = st.columns([3, 1, 1])
    chosen = c[0].multiselect("API offers to compare", list(known), key="be-apis",
                              format_func=lambda i: f"{i} ({known[i].currency} {known[i].input_per_million:g} in / "
                                                    f"{known[i].output_per_million:g} out per M)")
    target = c[1].number_input("p95 target (s)", 0.1, 3600.0, 5.0, 0.5, key="be-p95")
    growth = c[2].number_input("Monthly growth (%)", -50.0, 100.0, 10.0, 1.0, key="be-growth")
    if not chosen:
        st.info("Pick at least one API offer to compare with.")
        return
    try:  # the page's own inputs are checked above: what is left is a model no group of these GPUs holds
        result = estimate_breakeven(BreakevenInput(
            model=spec, gpu=gpu, gpus=gpus, dtype=dtype, price_usd_per_hour=price, prompt_tokens=prompt,
            output_tokens=output, requests_per_s=rps, apis=tuple(chosen), extra_offers=extra, p95_target_s=target,
            monthly_growth=growth / 100.0, rate=current_currency(), serve=serve))
    except ValidationError as exc:
        st.warning(f"Self-hosting cannot be compared here: {exc}")
        return
    _verdict(result)
    table = comparison_table(result)
    st.dataframe(money_table(table), hide_index=True, width="stretch")
    curve = pd.DataFrame(result["curve"])
    st.plotly_chart(breakeven_chart(curve, rps, {a["id"]: a["breakeven_requests_per_s"] for a in result["api"]},
                                    current_currency()), width="stretch", key="be-chart")
    st.caption(STEP_NOTE)
    for offer_id in chosen:
        model, why = open_model_spec(known[offer_id])
        if model is not None and model.id != spec.id:
            st.button(f"Self-host {model.name} instead (the model {offer_id} serves)", key=f"be-same-{offer_id}",
                      on_click=_pick_model, args=(model.id,))
        elif model is None:
            st.caption(why)
    downloads("self-host-vs-api", {k: v for k, v in result.items() if k != "curve"}, table, key="breakeven")


def _verdict(r: dict) -> None:
    now = r["cheaper"]
    later = (r.get("month_12") or {}).get("cheaper")
    m = st.columns(4)
    m[0].metric("Self-host, per month", money(r["self_host_monthly_usd"]),
                help=f"{r['replicas']} replica(s) of {r['gpus_per_replica']} × {r['gpu']}, {r['utilization']:.0%} used")
    m[1].metric("Cheaper at your load", "self-hosting" if now == SELF_HOST else now)
    m[2].metric("Cheaper at month 12", "–" if later is None else "self-hosting" if later == SELF_HOST else later,
                help=f"at {r['month_12']['requests_per_s']:.3g} requests/s" if r.get("month_12") else None)
    lat = r["latency"]
    m[3].metric("Request latency (self-host)", f"{lat['p95_estimate_s']:.2f} s",
                delta=None if lat["meets_target"] is None else "within target" if lat["meets_target"] else "over target",
                delta_color="normal" if lat["meets_target"] else "inverse", delta_arrow="off", help=lat["basis"])


def comparison_table(r: dict) -> pd.DataFrame:
    """One row per option: monthly cost now and at month 12, break-even load, cheaper at your load."""
    later = {a["id"]: a["monthly_usd"] for a in (r.get("month_12") or {}).get("api", [])}
    rows = [{"option": f"{SELF_HOST}: {r['gpus_needed']} × {r['gpu']}", "monthly_usd": r["self_host_monthly_usd"],
             "month_12_monthly_usd": (r.get("month_12") or {}).get("self_host_monthly_usd"),
             "breakeven_requests_per_s": None, "list_price": "", "cheaper_at_your_load": ""}]
    for a in r["api"]:
        rows.append({"option": a["id"], "monthly_usd": a["monthly_usd"], "month_12_monthly_usd": later.get(a["id"]),
                     "breakeven_requests_per_s": a["breakeven_requests_per_s"],
                     "list_price": f"{a['currency']} {a['input_per_million']:g} in / {a['output_per_million']:g} out per M",
                     "cheaper_at_your_load": a["cheaper_at_load"]})
    return pd.DataFrame(rows)
