"""Self-host or API: what a month of your traffic costs each way, and from what load self-hosting pays.

Self-hosting (``engine.estimate.serving``): replicas = ceil(R ÷ r₁), r₁ the requests/s one replica of
``g`` GPUs sustains at full batch, so a month costs ``S(R) = ceil(R / r₁) · c`` with
``c = g × price per GPU-hour × 730``: a step function of the load, one step per replica.
An API costs ``A(R) = a · R`` with ``a = 2,628,000 × (P × input + O × output) / 10⁶`` in USD
(``engine.estimate.apis``, at the catalog's dated exchange rate).

Break-even: the smallest R with S(R) <= A(R). On the k-th step (R in ((k−1)·r₁, k·r₁]) that holds from
R = k·c / a on, so it exists on the first step exactly when ``c / a <= r₁`` (a full replica costs no
more than the API would for its traffic), and then it is ``c / a``. The steps bring the API back
ahead just above each replica's capacity, on ((k−1)·r₁, k·c/a), which the curve shows; when
``c / a > r₁`` the API is cheaper at every load (None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from engine import money
from engine.catalog import GPUSpec
from engine.errors import ValidationError, require_number
from engine.estimate.apis import SECONDS_PER_MONTH, ApiOffer, api_monthly_usd, get_offer
from engine.estimate.architecture import ModelSpec
from engine.estimate.models import resolve_model
from engine.estimate.serving import HOURS_PER_MONTH, ServeEstimate, ServeInput, estimate_serving

SELF_HOST = "self-host"
STEP_NOTE = ("Self-hosting is a step function of the load: each replica costs a whole month of its GPUs, so "
             "just above each replica's capacity the API is cheaper again until the next replica fills up.")
CURVE_POINTS = 121


@dataclass(frozen=True)
class BreakevenInput:
    model: ModelSpec | str
    gpu: GPUSpec | str
    prompt_tokens: int
    output_tokens: int
    requests_per_s: float
    apis: tuple[str | ApiOffer, ...]
    gpus: int | None = None  # per replica; None: the smallest tensor-parallel group that holds the model
    dtype: str = "bf16"
    price_usd_per_hour: float | None = None
    extra_offers: tuple[ApiOffer, ...] = ()
    p95_target_s: float | None = None
    monthly_growth: float | None = None  # a fraction; month 12's load is R × (1 + growth)^12
    cached_fraction: float = 0.0
    rate: money.Currency | None = None  # a user-set exchange rate for offers in that currency
    # The rest of the serving inputs (efficiencies, latencies, memory; the Serving page's assumptions):
    # model, GPU, dtype, tokens, load and price above replace its own.
    serve: ServeInput | None = None


def breakeven_load(replica_monthly_usd: float, api_usd_per_request_s: float, replica_rps: float) -> float | None:
    """Smallest load (requests/s) at which ceil(R / r₁) · c <= a · R: c / a when c / a <= r₁, else None."""
    if api_usd_per_request_s <= 0:
        return None  # a free API: self-hosting never costs no more (unless free too)
    load = replica_monthly_usd / api_usd_per_request_s
    return load if load <= replica_rps * (1 + 1e-12) else None


def _serve(inp: BreakevenInput, requests_per_s: float) -> ServeEstimate:
    base = replace(inp.serve or ServeInput(model=inp.model, gpu=inp.gpu), model=inp.model, gpu=inp.gpu,
                   gpus=inp.gpus or 1, dtype=inp.dtype, prompt_tokens=inp.prompt_tokens, output_tokens=inp.output_tokens,
                   requests_per_s=requests_per_s, price_usd_per_hour=inp.price_usd_per_hour, concurrency=None)
    if inp.gpus is None:  # the smallest group that holds the model, within one 8-GPU node where possible
        base = replace(base, gpus=min(8, estimate_serving(base).min_gpus_to_fit))
        est = estimate_serving(base)
        if not est.fits:
            base = replace(base, gpus=est.min_gpus_to_fit)
    return estimate_serving(base)


def _resolve(inp: BreakevenInput) -> list[ApiOffer]:
    if not inp.apis:
        raise ValidationError("name at least one API offer to compare with (--api ID; `preflight apis` lists them)")
    return [a if isinstance(a, ApiOffer) else get_offer(a, inp.extra_offers) for a in inp.apis]


def _compare(offers: list[ApiOffer], inp: BreakevenInput, requests_per_s: float, self_monthly: float) -> dict[str, Any]:
    rows = [{"id": o.id, "monthly_usd": api_monthly_usd(o, requests_per_s, inp.prompt_tokens, inp.output_tokens,
                                                       inp.cached_fraction, inp.rate)} for o in offers]
    best = min(rows, key=lambda r: r["monthly_usd"])
    cheaper = SELF_HOST if self_monthly <= best["monthly_usd"] else best["id"]
    return {"requests_per_s": requests_per_s, "self_host_monthly_usd": self_monthly, "api": rows, "cheaper": cheaper}


def estimate_breakeven(inp: BreakevenInput) -> dict[str, Any]:
    """Self-host vs each API at today's load (and at month 12 of the growth when given), each API's
    break-even load, the p95 estimate against the target, and the curve of monthly cost vs load."""
    rps = require_number("requests-per-s", inp.requests_per_s, low=0, low_inclusive=False, high=1e9)
    offers = _resolve(inp)
    est = _serve(inp, rps)
    if not est.fits:
        raise ValidationError(f"the model does not fit {est.gpus} × {est.gpu} with one sequence's KV cache; "
                              f"give --gpus {est.min_gpus_to_fit} or more")
    r1 = est.requests_per_s_per_replica
    replica_monthly = est.gpus * est.price_usd_per_hour * HOURS_PER_MONTH
    now = _compare(offers, inp, rps, est.monthly_cost_usd)
    api = []
    for offer, row in zip(offers, now["api"]):
        per_rps = api_monthly_usd(offer, 1.0, inp.prompt_tokens, inp.output_tokens, inp.cached_fraction, inp.rate)
        pin, pout, pcached = offer.usd_per_million(inp.rate)
        api.append({**row, "provider": offer.provider, "currency": offer.currency,
                    "breakeven_requests_per_s": breakeven_load(replica_monthly, per_rps, r1),
                    "input_per_million": offer.input_per_million, "output_per_million": offer.output_per_million,
                    "input_usd_per_million": pin, "output_usd_per_million": pout,
                    "cost_per_request_usd": per_rps / SECONDS_PER_MONTH, "open_model": offer.open_model,
                    "custom": offer.custom, "source": offer.source, "date": offer.date,
                    "cheaper_at_load": SELF_HOST if est.monthly_cost_usd <= row["monthly_usd"] else offer.id})
    month12 = None
    if inp.monthly_growth is not None:
        growth = require_number("monthly-growth", inp.monthly_growth, low=-0.5, high=1.0)
        r12 = rps * (1.0 + growth) ** 12
        month12 = _compare(offers, inp, r12, _serve(inp, r12).monthly_cost_usd)
    latency = est.request_latency_s
    target = None if inp.p95_target_s is None else require_number("p95-target-s", inp.p95_target_s, low=0,
                                                                  low_inclusive=False, high=3600)
    return {
        "model": resolve_model(inp.model).id, "gpu": est.gpu,
        "gpus_per_replica": est.gpus, "prompt_tokens": inp.prompt_tokens, "output_tokens": inp.output_tokens,
        "requests_per_s": rps, "requests_per_s_per_replica": r1, "replicas": est.replicas,
        "gpus_needed": est.gpus_needed, "price_usd_per_hour": est.price_usd_per_hour,
        "replica_monthly_usd": replica_monthly, "self_host_monthly_usd": est.monthly_cost_usd,
        "utilization": est.utilization, "cost_per_million_tokens_at_load_usd": est.cost_per_million_tokens_at_load_usd,
        "api": api, "cheaper": now["cheaper"], "month_12": month12,
        "latency": {"p95_estimate_s": latency, "target_s": target,
                    "meets_target": None if target is None else latency <= target,
                    "basis": "the estimator's request latency at full batch (prefill + output tokens × the decode "
                             "step at the concurrency used): a stand-in for p95, not a measurement"},
        "step_note": STEP_NOTE,
        "curve": breakeven_curve(offers, inp, r1, replica_monthly,
                                 max(rps, month12["requests_per_s"] if month12 else 0.0),
                                 [a["breakeven_requests_per_s"] for a in api]),
    }


def breakeven_curve(offers: list[ApiOffer], inp: BreakevenInput, replica_rps: float, replica_monthly: float,
                    load: float, breakevens: list[float | None]) -> list[dict[str, float]]:
    """Monthly cost vs load from 0 to past today's load, the break-evens and three replicas: self-hosting
    (``self_host_monthly_usd``, its steps sampled just before and after each replica's capacity) and
    each API (``<id>_monthly_usd``)."""
    top = 1.25 * max(load, min(3 * replica_rps, 50 * load), *(b for b in breakevens if b is not None))
    points = {top * i / (CURVE_POINTS - 1) for i in range(1, CURVE_POINTS)}
    k = 1
    while k * replica_rps < top and k <= 200:  # both sides of every step
        points.update({k * replica_rps, k * replica_rps * (1 + 1e-6)})
        k += 1
    rows = []
    for r in sorted(points):
        row = {"requests_per_s": r, "self_host_monthly_usd": max(1, math.ceil(r / replica_rps - 1e-9)) * replica_monthly}
        for offer in offers:
            row[f"{offer.id}_monthly_usd"] = api_monthly_usd(offer, r, inp.prompt_tokens, inp.output_tokens,
                                                             inp.cached_fraction, inp.rate)
        rows.append(row)
    return rows


__all__ = ["SELF_HOST", "STEP_NOTE", "BreakevenInput", "breakeven_curve", "breakeven_load", "estimate_breakeven"]


def human(r: dict[str, Any]) -> str:
    """The comparison as a few lines for the terminal, money in the result's currency (``--currency``; USD
    when the result has no currency block)."""
    block = r.get("currency")
    cur = money.get_currency(block["code"], block["per_usd"]) if isinstance(block, dict) else None

    def usd(value: float, compact: bool = False) -> str:
        return money.format_money(value, cur, compact)
    lines = [f"self-host   {r['gpus_needed']} × {r['gpu']} ({r['replicas']} replica(s) of {r['gpus_per_replica']}, "
             f"{r['utilization']:.0%} used): {usd(r['self_host_monthly_usd'], compact=False)} a month, "
             f"{usd(r['cost_per_million_tokens_at_load_usd'], compact=False)} per M tokens at this load"]
    for a in r["api"]:
        at = a["breakeven_requests_per_s"]
        lines.append(f"{a['id']:<40} {usd(a['monthly_usd'], compact=False)} a month ({a['currency']} "
                     f"{a['input_per_million']:g} in / {a['output_per_million']:g} out per M); self-hosting pays from "
                     + ("never (a full replica costs more than the API for its traffic)" if at is None
                        else f"{at:.3g} requests/s"))
    lines.append(f"cheaper at {r['requests_per_s']:g} requests/s: {r['cheaper']}")
    if r.get("month_12"):
        lines.append(f"cheaper at month 12 ({r['month_12']['requests_per_s']:.3g} requests/s): {r['month_12']['cheaper']}")
    lat = r["latency"]
    lines.append(f"latency     {lat['p95_estimate_s']:.2f} s per request at full batch"
                 + ("" if lat["target_s"] is None else f" against a {lat['target_s']:g} s p95 target: "
                    + ("within" if lat["meets_target"] else "over")))
    lines.append(r["step_note"])
    return "\n".join(lines)
