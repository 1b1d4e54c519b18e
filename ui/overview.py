"""The Overview's plan: the saved scenario last used on the Readiness page (or the founders' usual plan as
an example), through ``engine.readiness.assess``: training or fine-tuning, serving self-hosted vs API,
runway and the verdicts."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.readiness.assess import assess
from engine.readiness.profile import Profile, Scenario, founder_example
from engine.readiness.store import ScenarioStore
from engine.units import format_count, format_duration_hours
from ui.currency import current_currency
from ui.readiness import plain, verdict_cards
from ui.widgets import money, run_engine

METHOD_NAMES = {"pretrain": "Pretrain", "full": "Full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}


def current_plan() -> tuple[Scenario | None, Profile]:
    """(the most recently used saved scenario, its profile), or (None, the founders' usual plan)."""
    latest = ScenarioStore().most_recent()
    return (latest, latest.profile) if latest is not None else (None, founder_example())


def plan_summary() -> dict[str, Any]:
    scenario, profile = current_plan()
    if scenario is not None:
        st.subheader(f"Your plan: scenario {plain(scenario.name)}")
        st.caption("The scenario you last opened or saved on the Readiness page; change it there.")
    else:
        st.subheader("An example plan: fine-tune an open model, serve it to a few thousand users")
        st.caption("No scenario saved yet. This is the usual founder plan (QLoRA of Llama 3 8B on 40M tokens, "
                   "3,000 daily users); enter your own numbers on the Readiness page and save them.")
    r = run_engine(assess, profile, scenario=scenario.name if scenario else "example", samples=200,
                   currency=current_currency()).to_dict()
    m = st.columns(4)
    runs = r.get("training") or []
    cost = r.get("training_cost_usd")
    m[0].metric("Training plan", "–" if cost is None else money(cost),  # short label: the plan's words go in the help
                help="; ".join(f"{METHOD_NAMES.get(t['method'], t['method'])} of {t['model']} on "
                               f"{format_count(t['tokens'])} tokens: {t['gpus']} × {t['gpu']}, "
                               f"{format_duration_hours(t['wall_clock_days'] * 24)}, "
                               f"{t['gpu_hours']:,.1f} GPU-hours at {t['mfu']:.0%} MFU" for t in runs) or None)
    if runs:
        st.caption("Training: " + "; ".join(f"{METHOD_NAMES.get(t['method'], t['method'])} of {t['model']} on "
                                            f"{format_count(t['tokens'])} tokens, {t['gpus']} × {t['gpu']}" for t in runs))
    _serving(m[1], m[2], r)
    runway = r.get("runway_months_after_training")
    m[3].metric("Runway after training", "–" if cost is None else "unlimited" if runway is None else f"{runway:.1f} months",
                help=None if r.get("break_even_users") is None else f"break-even at {r['break_even_users']:,} daily users")
    verdict_cards(r["areas"])
    return r


def _serving(left, right, r: dict[str, Any]) -> None:
    cost = r.get("serving_cost_per_month_usd")
    c = r.get("serving_comparison") or {}
    if cost is None:
        left.metric("Serving per month", "–")
        return
    if c.get("month_1"):
        now, later = c["month_1"], c["month_12"]
        left.metric("Serving a month (API)", money(now["api_usd"]),
                    help=f"through {c['api']} at its list price; self-hosting {c['self_host_model']} on "
                         f"{now['self_host_gpus']} × {c['self_host_gpu']}: {money(now['self_host_usd'])} a month")
        right.metric("Cheaper now / at month 12",
                     f"{_who(now['cheaper'], c)} / {_who(later['cheaper'], c)}",
                     help=f"month 12: API {money(later['api_usd'])} vs self-host {money(later['self_host_usd'])} "
                          f"({later['self_host_gpus']} GPU(s)) a month")
        return
    left.metric("Serving per month (self-hosted)", money(cost),
                help=f"{r['serving_gpus_needed']} GPU(s) in month 1, speed from the {r['serving_speed_source']}")
    right.metric("Gross margin per request", money(r["gross_margin_per_request_usd"])
                 if r["gross_margin_per_request_usd"] >= 0 else "-" + money(-r["gross_margin_per_request_usd"]),
                 help="compare with an API offer: 'Serve through' on the Readiness page, or the Serving page")


def _who(cheaper: str, c: dict[str, Any]) -> str:
    return "self-host" if cheaper == "self-host" else "API"
