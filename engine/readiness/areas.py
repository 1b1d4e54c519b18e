"""Verdicts per area (training, serving, data, model, latency): ready / at risk / blocked / no data yet,
one sentence why, and the page that explains it.

Each verdict reads a real artifact or the scenario's own projection; where no artifact exists yet the
sentence says what to do next, never a placeholder number. Thresholds are stated in the sentences and
here:

- training: blocked when the planned runs cost more than the cash; at risk when less than
  ``RUNWAY_AT_RISK_MONTHS`` of runway is left after them or they take more than half the cash.
- serving: blocked when the model does not fit the GPU; at risk with a negative gross margin per
  request or when cash runs out within ``CASH_OUT_AT_RISK_MONTHS`` at the projected growth.
- data: the latest data check's readiness score: ready from 75, at risk from 40, blocked below (the
  bands of the data-check page's gauge).
- model: the latest training run: blocked when it failed or diverged, at risk while running, stopped,
  or when its validation loss did not fall by ``LEARNED_FRACTION`` from the first evaluation.
- latency: the estimated time per request against the p95 target once a serving calibration on the
  serving GPU's model measured the efficiencies it uses: ready within it, at risk up to 1.5× it, blocked
  beyond; no p95 is measured yet (nothing in the workspace records one), and the sentence says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engine.money import Currency, format_money

STATUSES = ("ready", "at risk", "blocked", "no data yet")
RUNWAY_AT_RISK_MONTHS = 12.0
CASH_OUT_AT_RISK_MONTHS = 24  # investors' usual advice: raise with 18-24 months of runway left
LEARNED_FRACTION = 0.10
PAGES = {"training": "train", "serving": "serve", "data": "data", "model": "lab", "latency": "serve"}
TITLES = {"training": "Training", "serving": "Serving", "data": "Data", "model": "Model", "latency": "Latency"}


@dataclass(frozen=True)
class Area:
    id: str
    status: str
    reason: str
    page: str

    @property
    def title(self) -> str:
        return TITLES[self.id]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _usd(value: float, currency: Currency | None = None) -> str:
    """A USD amount for a sentence, shown in ``currency`` (default USD): $2.2K, ¥15.6K (engine.money's
    one formatter)."""
    return format_money(value, currency)


def training_area(projection: dict | None, cash_usd: float, error: str | None = None,
                  currency: Currency | None = None) -> Area:
    if error:
        return Area("training", "blocked", f"The training plan cannot be costed: {error}", PAGES["training"])
    if projection is None:
        return Area("training", "no data yet", "Enter the company profile to cost the planned training.", PAGES["training"])
    cost = projection["training_cost_usd"]
    runs = projection.get("training") or []
    if not runs:
        return Area("training", "ready", "No training run is planned, so nothing is paid up front.", PAGES["training"])
    basis = "; ".join(sorted({r["mfu_basis"] for r in runs}))
    if cost > cash_usd:
        return Area("training", "blocked", f"Training costs {_usd(cost, currency)}, more than the {_usd(cash_usd, currency)} in cash "
                    f"(MFU: {basis}).", PAGES["training"])
    runway = projection["runway_months_after_training"]
    share = cost / cash_usd if cash_usd else 1.0
    if runway is not None and runway < RUNWAY_AT_RISK_MONTHS or share > 0.5:
        left = "unlimited" if runway is None else f"{runway:.1f}"
        return Area("training", "at risk", f"Training takes {share:.0%} of cash and leaves {left} months of runway "
                    f"(under {RUNWAY_AT_RISK_MONTHS:.0f} is at risk; MFU: {basis}).", PAGES["training"])
    left = "unlimited" if runway is None else f"{runway:.1f}"
    return Area("training", "ready", f"Training takes {share:.0%} of cash and leaves {left} months of runway "
                f"(MFU: {basis}).", PAGES["training"])


def serving_area(projection: dict | None, error: str | None = None, currency: Currency | None = None) -> Area:
    if error:
        return Area("serving", "blocked", f"Serving cannot be planned: {error}", PAGES["serving"])
    if projection is None:
        return Area("serving", "no data yet", "Enter the expected users and price to plan serving.", PAGES["serving"])
    margin = projection["gross_margin_per_request_usd"]
    gpus, cost = projection["serving_gpus_needed"], projection["serving_cost_per_month_usd"]
    speed = projection["serving_speed_source"]
    where = f"{gpus} GPU(s), {_usd(cost, currency)} a month (speed from the {speed})"
    if projection.get("serving_comparison"):
        where = f"{_usd(cost, currency)} a month through the {speed}; {compare_sentence(projection['serving_comparison'], currency)}"
    if margin < 0:
        return Area("serving", "at risk", f"Each request loses {_usd(-margin, currency)} at this price: {where}.", PAGES["serving"])
    out = projection["cash_out_month"]
    if out is not None and out <= CASH_OUT_AT_RISK_MONTHS:
        return Area("serving", "at risk", f"Cash runs out in month {out} at the projected growth: {where}.", PAGES["serving"])
    return Area("serving", "ready", f"A margin of {_usd(margin, currency)} per request: {where}.", PAGES["serving"])


def compare_sentence(c: dict, currency: Currency | None = None) -> str:
    """Which is cheaper now (month 1) and at month 12: the API or self-hosting the open model."""
    if c.get("self_host_error"):
        return f"self-hosting cannot be compared: {c['self_host_error']}"
    own = f"self-hosting {c['self_host_model']} on {c['self_host_gpu']}"

    def month(m: int) -> str:
        row = c[f"month_{m}"]
        who = own if row["cheaper"] == "self-host" else f"the API {c['api']}"
        return (f"{who} is cheaper at month {m} ({_usd(row['api_usd'], currency)} through the API vs "
                f"{_usd(row['self_host_usd'], currency)} for {row['self_host_gpus']} GPU(s))")

    return f"{month(1)}; {month(12)}"


def data_area(data: dict | None) -> Area:
    if not data:
        return Area("data", "no data yet", "No dataset checked yet: run a data check on the Data checks page.",
                    PAGES["data"])
    score = data.get("score") or 0
    top = data.get("top_findings") or []
    worst = f"; top finding: {top[0]['title']}" if top else "; no problems found"
    status = "ready" if score >= 75 else "at risk" if score >= 40 else "blocked"
    return Area("data", status, f"{data.get('file')} scores {score}/100{worst}.", PAGES["data"])


def model_area(run: dict | None, first_val_loss: float | None = None) -> Area:
    if not run:
        return Area("model", "no data yet", "No model trained yet: train one in the Model lab.", PAGES["model"])
    name, status = run["name"], run["status"]
    if run.get("shipped"):  # the demo model shipped with Preflight says nothing about the user's model
        return Area("model", "no data yet", f"Only the demo model shipped with Preflight ({name}) so far: train one "
                    f"on your data in the Model lab.", PAGES["model"])
    loss = run.get("best_val_loss") or run.get("val_loss")
    if status in ("failed", "diverged"):
        return Area("model", "blocked", f"The latest run {name} {status}: {run.get('error') or 'see the lab'}.", PAGES["model"])
    if status in ("queued", "running", "stopping"):
        return Area("model", "at risk", f"The latest run {name} is still {status}.", PAGES["model"])
    if loss is None:
        return Area("model", "at risk", f"The latest run {name} ({status}) has no validation loss yet.", PAGES["model"])
    acc = run.get("val_accuracy")
    quality = f"validation loss {loss:.3f}" + (f", accuracy {acc:.1%}" if acc is not None else "")
    ev = run.get("evaluation") or {}  # the evaluation report's headline (engine/lab/evaluate.py), when saved
    shown = [f"{label} {ev[key]:{fmt}}" for key, label, fmt in (("accuracy", "accuracy", ".1%"), ("macro_f1", "macro F1", ".3f"),
                                                               ("perplexity", "perplexity", ".3g"))
             if isinstance(ev.get(key), (int, float))]
    if shown:
        quality += "; evaluation: " + ", ".join(shown)
    if first_val_loss is not None and first_val_loss > 0:
        drop = 1.0 - loss / first_val_loss
        if drop < LEARNED_FRACTION:
            return Area("model", "at risk", f"The latest run {name} barely learned: {quality}, "
                        f"{drop:.0%} below its first evaluation.", PAGES["model"])
        return Area("model", "ready", f"The latest run {name} ({status}) reached {quality}, "
                    f"{drop:.0%} below its first evaluation.", PAGES["model"])
    if status == "stopped":
        return Area("model", "at risk", f"The latest run {name} was stopped at {quality}.", PAGES["model"])
    return Area("model", "ready", f"The latest run {name} finished with {quality}.", PAGES["model"])


def latency_area(target_s: float, estimated_s: float | None = None, calibrated: str | None = None) -> Area:
    """``calibrated``: where the estimate's efficiencies were measured (a serving calibration on the
    serving GPU's model); then the estimate is judged, and the sentence says it is not a p95 yet."""
    if calibrated and estimated_s is not None:
        where = (f"{estimated_s:.2f} s per request at full batch, estimated from the {calibrated}, against the "
                 f"{target_s:g} s p95 target; no p95 measured yet")
        status = "ready" if estimated_s <= target_s else "at risk" if estimated_s <= 1.5 * target_s else "blocked"
        return Area("latency", status, f"{where[0].upper()}{where[1:]}.", PAGES["latency"])
    hint = (f" (the estimator expects {estimated_s:.2f} s per request at full batch, not a measurement)"
            if estimated_s is not None else "")
    return Area("latency", "no data yet", f"No measured latency yet: measure the serving model on its GPU in the "
                f"inference room, then compare with the {target_s:g} s p95 target{hint}.", PAGES["latency"])
