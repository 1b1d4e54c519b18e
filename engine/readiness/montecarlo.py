"""Uncertainty: a Monte Carlo run over the ranges of the key assumptions, P10/P50/P90 of the headline
figures, a tornado of what moves runway and margin most, and the cash fan over time.

Each range (engine/catalog/uncertainty.toml) is a factor on the scenario's own point value: MFU, GPU
price, training tokens, daily users, monthly growth, requests per user and serving efficiency. A
sample multiplies the point values by one draw of every factor and runs the same cash model as
:func:`engine.readiness.finance.project`. The estimators run once per input change, not per sample:

- training cost is linear in tokens and GPU price and inverse in MFU (``engine.estimate.training``:
  GPU-hours = FLOPs / (peak · MFU) / 3600, FLOPs = per-token FLOPs · tokens), so a sample's cost is the
  point cost × tokens factor × price factor × point MFU / sampled MFU (MFU capped at 1);
- one serving replica's per-request GPU time is a/s + b at efficiency factor s
  (:class:`~engine.readiness.finance.ServingBasis`), from two estimator calls.

So 2,000 samples × 60 months are a few numpy array operations. ``tests/readiness`` checks that this
vectorized path and the scalar path (the estimators called per sample) agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.catalog import uncertainty_rows
from engine.errors import ValidationError
from engine.readiness.finance import (DAYS_PER_MONTH, HORIZON_MONTHS, HOURS_PER_MONTH, SECONDS_PER_DAY, ServingBasis,
                                      revenue_per_request)
from engine.readiness.profile import MAX_DAILY_USERS, Profile

FACTORS = ("mfu", "gpu_price", "tokens", "users", "growth", "requests_per_user", "serving_efficiency")
QUANTILE_FIELDS = ("training_cost_usd", "serving_cost_per_month_usd", "runway_months_after_training",
                   "gross_margin_per_request_usd")
DEFAULT_SAMPLES = 2000


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    distribution: str  # "triangular" or "uniform"
    low: float
    mode: float
    high: float
    source: str = ""
    date: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_ranges() -> dict[str, Range]:
    """The catalog's ranges, by key."""
    out = {}
    for row in uncertainty_rows():
        out[row["key"]] = Range(key=row["key"], label=row["label"], distribution=row["distribution"],
                                low=float(row["low"]), mode=float(row.get("mode", 1.0)), high=float(row["high"]),
                                source=row.get("source", ""), date=row.get("date", ""))
    missing = set(FACTORS) - set(out)
    if missing:  # pragma: no cover - a broken catalog file
        raise ValidationError(f"uncertainty.toml lacks ranges for {', '.join(sorted(missing))}")
    return out


def check_range(r: Range) -> Range:
    if r.distribution not in ("triangular", "uniform"):
        raise ValidationError(f"range {r.key}: distribution must be triangular or uniform, got {r.distribution!r}")
    if not (0 < r.low <= r.mode <= r.high <= 100):
        raise ValidationError(f"range {r.key}: need 0 < low <= mode <= high <= 100, got {r.low:g}, {r.mode:g}, {r.high:g}")
    return r


def draw(ranges: dict[str, Range], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` draws of every factor (a fixed seed: the same inputs give the same figures on every rerun)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in FACTORS:
        r = check_range(ranges[key])
        if r.low == r.high:
            out[key] = np.full(n, r.low)
        elif r.distribution == "uniform":
            out[key] = rng.uniform(r.low, r.high, n)
        else:
            out[key] = rng.triangular(r.low, r.mode, r.high, n)
    return out


@dataclass(frozen=True)
class PointCosts:
    """What the estimators said once for the scenario: each run's cost and MFU, and the serving basis."""

    run_costs: tuple[float, ...]
    run_mfus: tuple[float, ...]
    basis: ServingBasis
    run_mfu_free_costs: tuple[float, ...] = ()  # the part of each run's cost the MFU does not scale (QLoRA dequant)


def simulate(profile: Profile, point: PointCosts, factors: dict[str, np.ndarray],
             horizon: int = HORIZON_MONTHS) -> dict[str, np.ndarray]:
    """The cash model for every sample at once. Arrays of shape (n,), and ``cash`` of (n, horizon + 1)."""
    f = {k: np.asarray(v, dtype=float) for k, v in factors.items()}
    n = len(f["mfu"])
    training = np.zeros(n)
    free = point.run_mfu_free_costs or (0.0,) * len(point.run_costs)
    for cost, mfu, fixed in zip(point.run_costs, point.run_mfus, free, strict=True):
        sampled = np.minimum(1.0, mfu * f["mfu"])
        training += ((cost - fixed) * (mfu / sampled) + fixed) * f["tokens"] * f["gpu_price"]
    basis = point.basis
    gpu_hour = basis.price_usd_per_hour * f["gpu_price"]
    users0 = np.minimum(MAX_DAILY_USERS, profile.daily_active_users * f["users"])
    growth = profile.monthly_growth * f["growth"]
    per_user_day = profile.requests_per_user_per_day * f["requests_per_user"]
    months = np.arange(horizon, dtype=float)
    users = np.minimum(users0[:, None] * (1.0 + growth[:, None]) ** months[None, :], MAX_DAILY_USERS)
    avg_rps = users * per_user_day[:, None] / SECONDS_PER_DAY
    requests = users * per_user_day[:, None] * DAYS_PER_MONTH
    if basis.api_cost_per_request_usd is not None:  # an API: tokens × list price, no GPUs to size
        replicas = np.zeros_like(users)
        serving = requests * basis.api_cost_per_request_usd
    else:
        replica_rps = 1.0 / (basis.scaled_s / f["serving_efficiency"] + basis.fixed_s)
        replicas = np.maximum(1.0, np.ceil(avg_rps * profile.peak_factor / replica_rps[:, None] - 1e-9))
        serving = replicas * basis.gpus_per_replica * gpu_hour[:, None] * HOURS_PER_MONTH
    kind, price = profile.pricing
    if kind == "subscription_usd_per_user_month":
        revenue = users * price
    else:
        revenue = requests * revenue_per_request(profile)
    start = profile.cash_usd - training
    cash = np.empty((n, horizon + 1))
    cash[:, 0] = start
    cash[:, 1:] = start[:, None] + np.cumsum(revenue - profile.monthly_burn_usd - serving, axis=1)
    spend = profile.monthly_burn_usd + serving[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        runway = np.where(spend > 0, np.maximum(0.0, start) / spend, np.inf)
    below = cash < 0
    out_month = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    margin = (revenue[:, 0] - serving[:, 0]) / requests[:, 0]
    return {"training_cost_usd": training, "serving_cost_per_month_usd": serving[:, 0],
            "serving_gpus_needed": replicas[:, 0] * basis.gpus_per_replica, "revenue_per_month_usd": revenue[:, 0],
            "runway_months_after_training": runway, "gross_margin_per_request_usd": margin,
            "cash_out_month": out_month, "cash": cash}


def _q(values: np.ndarray) -> dict[str, float | None]:
    p10, p50, p90 = np.quantile(values, [0.1, 0.5, 0.9])
    return {k: (float(v) if np.isfinite(v) else None) for k, v in (("p10", p10), ("p50", p50), ("p90", p90))}


@dataclass(frozen=True)
class Uncertainty:
    samples: int
    quantiles: dict[str, dict[str, float | None]]
    cash_out_probability: float        # share of samples whose cash runs out within the horizon
    fan: dict[str, list[float]]        # month, p10, p50, p90 of cash at each month's end
    tornado: list[dict[str, Any]]      # one row per assumption, biggest swing in runway first
    ranges: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tornado(profile: Profile, point: PointCosts, ranges: dict[str, Range]) -> list[dict[str, Any]]:
    """One assumption at a time at its range's low and high factor (the others at their point values):
    runway and first-month margin per request at each end."""
    k = len(FACTORS)
    factors = {key: np.ones(2 * k + 1) for key in FACTORS}
    for i, key in enumerate(FACTORS):
        factors[key][2 * i] = ranges[key].low
        factors[key][2 * i + 1] = ranges[key].high
    sim = simulate(profile, point, factors)
    runway, margin = sim["runway_months_after_training"], sim["gross_margin_per_request_usd"]
    base_runway, base_margin = runway[-1], margin[-1]
    rows = []
    for i, key in enumerate(FACTORS):
        lo, hi = 2 * i, 2 * i + 1
        rows.append({
            "key": key, "label": ranges[key].label, "low_factor": ranges[key].low, "high_factor": ranges[key].high,
            "runway_low": _finite(runway[lo]), "runway_high": _finite(runway[hi]), "runway_base": _finite(base_runway),
            "margin_low": float(margin[lo]), "margin_high": float(margin[hi]), "margin_base": float(base_margin),
            "runway_swing": _finite(abs(runway[hi] - runway[lo])) or 0.0,
            "margin_swing": float(abs(margin[hi] - margin[lo])),
        })
    return sorted(rows, key=lambda r: (r["runway_swing"], r["margin_swing"]), reverse=True)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def run(profile: Profile, point: PointCosts, ranges: dict[str, Range] | None = None, samples: int = DEFAULT_SAMPLES,
        seed: int = 0) -> Uncertainty:
    """P10/P50/P90 of the headline figures over ``samples`` draws, the tornado and the cash fan."""
    if not (10 <= samples <= 200_000):
        raise ValidationError(f"samples must be between 10 and 200000, got {samples}")
    ranges = {**default_ranges(), **(ranges or {})}
    sim = simulate(profile, point, draw(ranges, samples, seed))
    fan_q = np.quantile(sim["cash"], [0.1, 0.5, 0.9], axis=0)
    return Uncertainty(
        samples=samples, quantiles={k: _q(sim[k]) for k in QUANTILE_FIELDS},
        cash_out_probability=float((sim["cash_out_month"] >= 0).mean()),
        fan={"month": list(range(sim["cash"].shape[1])), "p10": fan_q[0].tolist(), "p50": fan_q[1].tolist(),
             "p90": fan_q[2].tolist()},
        tornado=tornado(profile, point, ranges), ranges=[ranges[k].to_dict() for k in FACTORS],
    )
