"""The month-by-month cash model of a profile: training cost, serving GPUs and cost at the month's load,
revenue, margin, break-even users and the month cash runs out.

Definitions (issue 9's contract; first month's figures unless named otherwise):

- A month is 730 hours (8,760 / 12); a day 86,400 s, so a month has 730 / 24 days.
- Training is paid at month 0, out of cash.
- Month m (1, 2, ...) has ``daily_active_users · (1 + monthly_growth)^(m-1)`` users (capped at 1e9).
- Its load is users × requests per user per day ÷ 86,400 requests/s on average; servers are sized for
  the peak: that times the peak-to-average factor (an editable assumption, stated in the output).
- Serving GPUs = replicas × GPUs per replica, replicas = ceil(peak load ÷ one replica's requests/s),
  at least one; one replica's requests/s comes from the serving estimator
  (``engine.estimate.serving``, a roofline model at full batch) or from a measured serving
  calibration where one exists. Serving cost = serving GPUs × GPU price per hour × 730.
- Revenue per month: requests × price per request, requests × output tokens ÷ 1e6 × price per million
  output tokens, or users × the subscription (daily users are taken as the paying users).
- Cash changes each month by revenue − burn − serving cost; ``cash_out_month`` is the first month that
  ends below zero (0 when training alone costs more than the cash), None within a 60-month horizon.
- Runway after training, with no revenue: (cash − training cost) ÷ (burn + first month's serving cost).
- Break-even users: the fewest daily users whose revenue covers burn + serving cost in a month
  (None when each replica's users pay less than the replica costs: no number of users breaks even).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

from engine.catalog import defaults, get_gpu
from engine.errors import ValidationError
from engine.estimate.models import resolve_model
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training
from engine.readiness.profile import MAX_DAILY_USERS, Profile, TrainingPlan

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
SECONDS_PER_DAY = 86_400.0
HORIZON_MONTHS = 60


@dataclass(frozen=True)
class ServingBasis:
    """What one serving replica does. Per-request GPU time at serving-efficiency factor ``s`` (both
    efficiencies of defaults.toml scaled by s) is ``scaled_s / s + fixed_s``: the roofline's compute and
    bandwidth terms divide by the efficiency, the fixed per-pass latencies do not."""

    model: str
    gpu: str
    gpus_per_replica: int
    concurrency: int
    scaled_s: float
    fixed_s: float
    price_usd_per_hour: float
    request_latency_s: float | None
    source: str  # "estimator", "measured (run NAME)" or "API ID list price"
    # Serving through an API (profile.serving_api): every request costs this, no GPUs are rented.
    api_cost_per_request_usd: float | None = None

    def requests_per_s_per_replica(self, efficiency: float = 1.0) -> float:
        if self.api_cost_per_request_usd is not None:
            return math.inf  # an API scales with the load: no replicas to size
        return 1.0 / (self.scaled_s / efficiency + self.fixed_s)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["requests_per_s_per_replica"] = (None if self.api_cost_per_request_usd is not None
                                             else self.requests_per_s_per_replica())
        return out


@dataclass(frozen=True)
class _ServingFields:
    """The profile fields the serving estimator reads (a cache key)."""

    serving_model: str
    serving_gpu: str
    serving_dtype: str
    prompt_tokens: int
    output_tokens: int


def serving_efficiencies(gpu_id: str, calibration: dict | None) -> tuple[float, float, str]:
    """(prefill compute efficiency, decode bandwidth efficiency, where they come from): a serving
    calibration's implied efficiencies when it ran on the serving GPU's model (the inference room's
    ``calibrate --serve``, a finished ``serve-calibrate`` run), else defaults.toml's."""
    d = defaults()
    if calibration and calibration.get("implied_prefill_efficiency") and calibration.get("implied_decode_efficiency"):
        device = str(calibration.get("device_name") or "")
        if gpu_token(gpu_id) in device.lower():
            pe = min(1.0, float(calibration["implied_prefill_efficiency"]))
            de = min(1.0, float(calibration["implied_decode_efficiency"]))
            return pe, de, (f"estimator with efficiencies measured by serving calibration {calibration.get('name')} "
                            f"on {device} (prefill {pe:.2f}, decode {de:.2f})")
        return (d["prefill_compute_efficiency"], d["decode_bandwidth_efficiency"],
                f"estimator (the latest serving calibration, {calibration.get('name')}, ran on {device or 'another device'}, "
                f"not a {gpu_id}: default efficiencies)")
    return d["prefill_compute_efficiency"], d["decode_bandwidth_efficiency"], "estimator"


def _serve_input(profile: Profile | _ServingFields, gpus: int, efficiency: float = 1.0, requests_per_s: float = 1.0,
                 price: float | None = None, base: tuple[float, float] | None = None) -> ServeInput:
    """``base``: the (prefill, decode) efficiencies the factor ``efficiency`` scales (default: defaults.toml)."""
    d = defaults()
    pe, de = base or (d["prefill_compute_efficiency"], d["decode_bandwidth_efficiency"])
    return ServeInput(model=profile.serving_model, gpu=profile.serving_gpu, gpus=gpus, dtype=profile.serving_dtype,
                      prompt_tokens=profile.prompt_tokens, output_tokens=profile.output_tokens,
                      requests_per_s=requests_per_s, price_usd_per_hour=price,
                      prefill_efficiency=pe * efficiency, decode_efficiency=de * efficiency)


def api_basis(profile: Profile) -> ServingBasis:
    """Serving through the profile's ``serving_api``: its list price × the request's tokens, converted at
    the catalog's dated rate (engine.estimate.apis). No GPUs, no replicas, no latency estimate."""
    from engine.estimate.apis import api_monthly_usd, get_offer

    offer = get_offer(profile.serving_api)
    per_request = api_monthly_usd(offer, 1.0, profile.prompt_tokens, profile.output_tokens) / (HOURS_PER_MONTH * 3600)
    return ServingBasis(model=offer.id, gpu="api", gpus_per_replica=0, concurrency=0, scaled_s=0.0, fixed_s=0.0,
                        price_usd_per_hour=0.0, request_latency_s=None,
                        source=f"API {offer.id} list price ({offer.currency} {offer.input_per_million:g} in / "
                               f"{offer.output_per_million:g} out per M tokens, {offer.date})",
                        api_cost_per_request_usd=per_request)


def serving_basis(profile: Profile, calibration: dict | None = None, self_host: bool = False) -> ServingBasis:
    """How the scenario serves: through its ``serving_api`` when set (:func:`api_basis`; ``self_host``
    asks for the self-hosted alternative instead), else one replica of the serving model (see
    :func:`_serving_basis`), cached on the fields it reads:
    a change of users, growth, cash or price reuses it, so the page reruns without the estimator.
    ``calibration``: the latest serving calibration (its efficiencies apply when it ran on this GPU
    model)."""
    if profile.serving_api and not self_host:
        return api_basis(profile)
    pe, de, source = serving_efficiencies(profile.serving_gpu, calibration)
    base = _serving_basis(profile.serving_model, profile.serving_gpu, profile.serving_dtype, profile.prompt_tokens,
                          profile.output_tokens, profile.serving_price_usd_per_hour, pe, de)
    return replace(base, source=source)


@lru_cache(maxsize=256)
def _serving_basis(model: str, gpu_id: str, dtype: str, prompt_tokens: int, output_tokens: int,
                   price_usd_per_hour: float | None, prefill_efficiency: float, decode_efficiency: float) -> ServingBasis:
    """One replica of the serving model: the tensor-parallel group (from the smallest that holds the
    weights up to one 8-GPU node) with the lowest GPU cost per request, per the serving estimator.

    Two estimates at efficiency factors 1 and 1/2 give the two parts of the per-request GPU time
    exactly (T(1) = a + b, T(1/2) = 2a + b), so the Monte Carlo can vary the efficiency without
    rerunning the estimator. A measured serving calibration of the same model on the same GPU
    (``requests_per_s_per_replica``, ``gpus``) replaces the estimator's throughput, keeping its split."""
    profile = _ServingFields(model, gpu_id, dtype, prompt_tokens, output_tokens)
    spec = resolve_model(model)
    gpu = get_gpu(gpu_id)
    price = gpu.price_usd_per_hour if price_usd_per_hour is None else price_usd_per_hour
    eff = (prefill_efficiency, decode_efficiency)
    probe = estimate_serving(_serve_input(profile, 1, base=eff))
    low = probe.min_gpus_to_fit
    if low > spec.n_heads:
        raise ValidationError(f"serving_model {spec.id} does not fit one tensor-parallel group of {gpu.id} "
                              f"({low} GPUs would need pipeline stages); choose a GPU with more memory or a smaller model")
    groups = [d for d in range(low, max(8, low) + 1) if spec.n_heads % d == 0] or [low]
    best = None
    for g in groups:
        est = estimate_serving(_serve_input(profile, g, base=eff))
        if not est.fits:
            continue
        per_gpu = est.requests_per_s_per_replica / g
        if best is None or per_gpu > best[0] * (1 + 1e-9):
            best = (per_gpu, g, est)
    if best is None:
        raise ValidationError(f"serving_model {spec.id} with {profile.prompt_tokens} + {profile.output_tokens} tokens "
                              f"does not fit on {gpu.id}; choose a GPU with more memory")
    _, g, full = best
    half = estimate_serving(_serve_input(profile, g, efficiency=0.5, base=eff))
    t1, t2 = 1.0 / full.requests_per_s_per_replica, 1.0 / half.requests_per_s_per_replica
    scaled, fixed = t2 - t1, max(0.0, 2.0 * t1 - t2)
    source = "estimator"
    return ServingBasis(model=spec.id, gpu=gpu.id, gpus_per_replica=g, concurrency=full.concurrency,
                        scaled_s=scaled, fixed_s=fixed, price_usd_per_hour=price,
                        request_latency_s=full.request_latency_s, source=source)


def gpu_token(gpu_id: str) -> str:
    """The model number that names a GPU in a device string ('h100-sxm' -> 'h100')."""
    return gpu_id.split("-")[0].lower()


def training_mfu(plan: TrainingPlan, calibration: dict | None) -> tuple[float | None, str]:
    """The MFU a planned run uses and why: the plan's own, a measured calibration on the same GPU
    model, or None (the catalog's typical figure for that GPU)."""
    if plan.mfu is not None:
        return plan.mfu, "set in the profile"
    if calibration and calibration.get("mfu") and gpu_token(plan.gpu) in str(calibration.get("device_name") or "").lower():
        return float(calibration["mfu"]), f"measured by calibration {calibration.get('name')}"
    return None, f"the catalog's typical MFU for {plan.gpu}"


def training_costs(profile: Profile, calibration: dict | None = None, *, mfu_factor: float = 1.0,
                   tokens_factor: float = 1.0, price_factor: float = 1.0) -> list[dict[str, Any]]:
    """Each planned run through the training estimator (method 'pretrain') or the fine-tuning estimator
    (full / lora / qlora: rank 16 on all linear layers with gradient checkpointing, one pass over the
    plan's tokens), with factors on its MFU (capped at 1), tokens and GPU price: what one Monte Carlo
    sample of the scalar path does. Both estimators' cost is linear in tokens and price and inverse in
    MFU, which the vectorized path relies on, except QLoRA's dequantization time (``mfu_free_cost_usd``),
    which is linear in tokens and price only."""
    from engine.estimate.finetune import FinetuneInput, estimate_finetune
    from engine.estimate.models import load_model_file

    out = []
    for plan in profile.training:
        mfu, why = training_mfu(plan, calibration)
        gpu = get_gpu(plan.gpu)
        base_mfu = gpu.typical_mfu_for("bf16") if mfu is None else mfu
        price = gpu.price_usd_per_hour if plan.price_usd_per_hour is None else plan.price_usd_per_hour
        model = load_model_file(plan.model_file) if plan.model_file else plan.model
        if plan.method == "pretrain":
            est = estimate_training(TrainingInput(model=model, tokens=plan.tokens * tokens_factor, gpu=gpu,
                                                  gpus=plan.gpus, mfu=min(1.0, base_mfu * mfu_factor),
                                                  price_usd_per_hour=price * price_factor))
            days, fixed = est.wall_clock_days, 0.0
        else:
            est = estimate_finetune(FinetuneInput(model=model, tokens=plan.tokens * tokens_factor, gpu=gpu,
                                                  gpus=plan.gpus, method=plan.method, gradient_checkpointing=True,
                                                  mfu=min(1.0, base_mfu * mfu_factor),
                                                  price_usd_per_hour=price * price_factor))
            # QLoRA's dequantization time does not scale with the MFU (engine/estimate/finetune_stacks.py)
            days, fixed = est.wall_clock_hours / 24, est.dequant_hours * est.price_usd_per_hour
        out.append({"model": plan.model, "method": plan.method, "tokens": est.tokens, "gpu": plan.gpu,
                    "gpus": plan.gpus, "mfu": est.mfu, "mfu_basis": why, "gpu_hours": est.gpu_hours,
                    "wall_clock_days": days, "cost_usd": est.cost_usd, "mfu_free_cost_usd": fixed})
    return out


def revenue_per_request(profile: Profile) -> float:
    """Revenue one request brings (a subscription spread over the user's requests in a month)."""
    kind, price = profile.pricing
    if kind == "price_per_request_usd":
        return price
    if kind == "price_per_million_output_tokens_usd":
        return price * profile.output_tokens / 1e6
    return price / (profile.requests_per_user_per_day * DAYS_PER_MONTH)


def users_in_month(profile: Profile, month: int) -> float:
    return min(profile.daily_active_users * (1.0 + profile.monthly_growth) ** (month - 1), MAX_DAILY_USERS)


MAX_BREAK_EVEN_USERS = 1e12  # more than a hundred times everyone alive: "never at this price"


def break_even_users(burn: float, revenue_per_user_month: float, users_per_replica: float,
                     replica_cost_month: float) -> int | None:
    """Fewest whole daily users U with U·v >= burn + c·max(1, ceil(U / u)), v the revenue per user-month,
    u the users one replica serves at peak, c a replica's monthly cost.

    k replicas serve up to k·u users, so k can break even when (burn + c·k) / v <= k·u, i.e.
    k >= burn / (v·u − c); from the smallest such k (at least 1), U = ceil((burn + c·k) / v) unless that
    whole number already needs another replica, then the next k. When v·u <= c every added replica
    costs more than its users pay: no U breaks even (None). Nor does it when the answer is beyond
    ``MAX_BREAK_EVEN_USERS`` (a price of a fraction of a cent can need more users than people exist)."""
    v, u, c = revenue_per_user_month, users_per_replica, replica_cost_month
    if v <= 0 or v * u <= c:
        return None
    if not math.isfinite(burn / v) or burn / v > MAX_BREAK_EVEN_USERS or not math.isfinite(burn / (v * u - c)):
        return None
    first = max(1, math.ceil(burn / (v * u - c) - 1e-12))
    for k in range(first, first + 100_000):
        users = max(1, math.ceil((burn + c * k) / v - 1e-9), math.floor((k - 1) * u) + 1)
        if users <= k * u * (1 + 1e-12):
            return users
    return max(1, math.ceil((burn + c * k) / v - 1e-9))  # pragma: no cover - u far below one user


def break_even_users_api(burn: float, revenue_per_user_month: float, api_cost_per_user_month: float) -> int | None:
    """Fewest daily users U with U·(v − a) >= burn when each user costs ``a`` a month in API tokens (no
    replicas: the cost is linear in users); None when a user costs at least what they pay."""
    margin = revenue_per_user_month - api_cost_per_user_month
    if margin <= 0 or burn / margin > MAX_BREAK_EVEN_USERS:
        return None
    return max(1, math.ceil(burn / margin - 1e-9))


@dataclass(frozen=True)
class Projection:
    """The plan's figures (the CLI contract's fields) and its month-by-month table."""

    training_cost_usd: float
    training_share_of_cash: float | None
    runway_months_after_training: float | None  # None: nothing is spent (no burn, free serving)
    serving_requests_per_s: float            # first month, at the peak the servers are sized for
    serving_requests_per_s_average: float
    peak_to_average: float
    serving_gpus_needed: int
    serving_gpus_per_replica: int
    serving_requests_per_s_per_replica: float | None  # None when serving through an API
    serving_speed_source: str
    serving_cost_per_month_usd: float
    revenue_per_month_usd: float
    revenue_per_request_usd: float
    serving_cost_per_request_usd: float
    gross_margin_per_request_usd: float
    gross_margin_per_user_month_usd: float
    break_even_users: int | None
    cash_out_month: int | None
    horizon_months: int
    months: tuple[dict[str, float], ...]
    training: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["months"] = list(self.months)
        out["training"] = list(self.training)
        return out


def project(profile: Profile, basis: ServingBasis, training_cost_usd: float, *, efficiency: float = 1.0,
            horizon: int = HORIZON_MONTHS, training: tuple[dict, ...] = (),
            replicas_for: Callable[[float], int] | None = None) -> Projection:
    """Run the cash model month by month (plain Python: the reference the vectorized path must match).
    ``replicas_for(peak requests/s)`` overrides the replica count (the scalar Monte Carlo path asks the
    serving estimator itself each month)."""
    peak = profile.peak_factor
    replica_rps = basis.requests_per_s_per_replica(efficiency)
    gpu_hour = basis.price_usd_per_hour
    per_request = revenue_per_request(profile)
    kind, price = profile.pricing
    cash = profile.cash_usd - training_cost_usd
    months: list[dict[str, float]] = [{"month": 0, "users": 0.0, "serving_gpus": 0, "serving_cost_usd": 0.0,
                                       "revenue_usd": 0.0, "cash_usd": cash}]
    cash_out = 0 if cash < 0 else None
    api = basis.api_cost_per_request_usd
    for m in range(1, horizon + 1):
        users = users_in_month(profile, m)
        avg_rps = users * profile.requests_per_user_per_day / SECONDS_PER_DAY
        requests = users * profile.requests_per_user_per_day * DAYS_PER_MONTH
        if api is not None:  # billed per token: no GPUs, no peak to size for
            gpus, serving = 0, requests * api
        else:
            if replicas_for is None:
                replicas = max(1, math.ceil(avg_rps * peak / replica_rps - 1e-9))
            else:
                replicas = replicas_for(avg_rps * peak)
            gpus = replicas * basis.gpus_per_replica
            serving = gpus * gpu_hour * HOURS_PER_MONTH
        revenue = users * price if kind == "subscription_usd_per_user_month" else requests * per_request
        cash += revenue - profile.monthly_burn_usd - serving
        if cash_out is None and cash < 0:
            cash_out = m
        months.append({"month": m, "users": users, "serving_gpus": gpus, "serving_cost_usd": serving,
                       "revenue_usd": revenue, "cash_usd": cash})
    first = months[1]
    requests1 = first["users"] * profile.requests_per_user_per_day * DAYS_PER_MONTH
    spend = profile.monthly_burn_usd + first["serving_cost_usd"]
    left = max(0.0, profile.cash_usd - training_cost_usd)
    users_per_replica = replica_rps * SECONDS_PER_DAY / (profile.requests_per_user_per_day * peak)
    revenue_per_user = per_request * profile.requests_per_user_per_day * DAYS_PER_MONTH
    cost_per_request = first["serving_cost_usd"] / requests1
    return Projection(
        training_cost_usd=training_cost_usd,
        training_share_of_cash=training_cost_usd / profile.cash_usd if profile.cash_usd > 0 else None,
        runway_months_after_training=left / spend if spend > 0 else None,
        serving_requests_per_s=first["users"] * profile.requests_per_user_per_day / SECONDS_PER_DAY * peak,
        serving_requests_per_s_average=first["users"] * profile.requests_per_user_per_day / SECONDS_PER_DAY,
        peak_to_average=peak, serving_gpus_needed=int(first["serving_gpus"]),
        serving_gpus_per_replica=basis.gpus_per_replica,
        serving_requests_per_s_per_replica=None if api is not None else replica_rps,
        serving_speed_source=basis.source,
        serving_cost_per_month_usd=first["serving_cost_usd"], revenue_per_month_usd=first["revenue_usd"],
        revenue_per_request_usd=per_request, serving_cost_per_request_usd=cost_per_request,
        gross_margin_per_request_usd=per_request - cost_per_request,
        gross_margin_per_user_month_usd=(first["revenue_usd"] - first["serving_cost_usd"]) / first["users"],
        break_even_users=(break_even_users(profile.monthly_burn_usd, revenue_per_user, users_per_replica,
                                           basis.gpus_per_replica * gpu_hour * HOURS_PER_MONTH) if api is None else
                          break_even_users_api(profile.monthly_burn_usd, revenue_per_user,
                                               api * profile.requests_per_user_per_day * DAYS_PER_MONTH)),
        cash_out_month=cash_out, horizon_months=horizon, months=tuple(months), training=tuple(training),
    )


def serving_comparison(profile: Profile, api: ServingBasis, own: ServingBasis) -> dict[str, Any]:
    """Serving through the API against self-hosting, in month 1 (now) and month 12 of the growth: the API
    is billed on the month's tokens, self-hosting on whole replicas sized for the peak load."""
    through_api = project(profile, api, 0.0, horizon=12).months
    self_hosted = project(profile, own, 0.0, horizon=12).months
    out: dict[str, Any] = {"api": api.model, "self_host_model": own.model, "self_host_gpu": own.gpu,
                           "self_host_gpus_per_replica": own.gpus_per_replica, "self_host_source": own.source,
                           "self_host_request_latency_s": own.request_latency_s}
    for month in (1, 12):
        a, s = through_api[month]["serving_cost_usd"], self_hosted[month]["serving_cost_usd"]
        out[f"month_{month}"] = {"users": through_api[month]["users"], "api_usd": a, "self_host_usd": s,
                                 "self_host_gpus": self_hosted[month]["serving_gpus"],
                                 "cheaper": "self-host" if s <= a else api.model}
    return out


def plan(profile: Profile, *, calibration: dict | None = None, serving_calibration: dict | None = None) -> Projection:
    """The profile's projection through the estimators (training estimator per planned run, serving
    estimator for a replica), with measured calibrations where they apply."""
    runs = training_costs(profile, calibration)
    basis = serving_basis(profile, serving_calibration)
    return project(profile, basis, sum(r["cost_usd"] for r in runs), training=tuple(runs))


def scaled_profile(profile: Profile, users: float = 1.0, growth: float = 1.0, requests: float = 1.0,
                   price: float = 1.0) -> Profile:
    """The profile with the Monte Carlo's demand factors applied (and the serving GPU price scaled)."""
    gpu_price = get_gpu(profile.serving_gpu).price_usd_per_hour if profile.serving_price_usd_per_hour is None \
        else profile.serving_price_usd_per_hour
    return replace(profile, daily_active_users=min(MAX_DAILY_USERS, profile.daily_active_users * users),
                   monthly_growth=profile.monthly_growth * growth,
                   requests_per_user_per_day=profile.requests_per_user_per_day * requests,
                   serving_price_usd_per_hour=gpu_price * price)


def scalar_sample(profile: Profile, factors: dict[str, float], *, calibration: dict | None = None,
                  serving_calibration: dict | None = None, horizon: int = HORIZON_MONTHS) -> Projection:
    """One Monte Carlo sample the slow way: the training estimator per planned run and the serving
    estimator for every month's load, with the sample's factors applied to the inputs. The reference
    that ``engine.readiness.montecarlo.simulate`` (all samples at once) must agree with."""
    f = factors
    runs = training_costs(profile, calibration, mfu_factor=f["mfu"], tokens_factor=f["tokens"], price_factor=f["gpu_price"])
    point = serving_basis(profile, calibration=serving_calibration)
    group = point.gpus_per_replica  # the replica shape is chosen once, at the point values
    pe, de, _ = serving_efficiencies(profile.serving_gpu, serving_calibration)
    sample = scaled_profile(profile, users=f["users"], growth=f["growth"], requests=f["requests_per_user"],
                            price=f["gpu_price"])
    basis = replace(point, price_usd_per_hour=sample.serving_price_usd_per_hour)

    def replicas_for(peak_rps: float) -> int:
        return estimate_serving(_serve_input(sample, group, efficiency=f["serving_efficiency"], requests_per_s=peak_rps,
                                             price=sample.serving_price_usd_per_hour, base=(pe, de))).replicas

    return project(sample, basis, sum(r["cost_usd"] for r in runs), efficiency=f["serving_efficiency"],
                   horizon=horizon, training=tuple(runs), replicas_for=replicas_for)
