"""The vectorized Monte Carlo agrees with the scalar path (the estimators per sample), converges to the
analytic quantiles where there are some, and is fast enough to rerun on every input change."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from engine.readiness.finance import scalar_sample, serving_basis, training_costs
from engine.readiness.montecarlo import FACTORS, PointCosts, Range, default_ranges, draw, run, simulate
from engine.readiness.profile import example_profile


def _point(profile):
    runs = training_costs(profile)
    return PointCosts(tuple(r["cost_usd"] for r in runs), tuple(r["mfu"] for r in runs), serving_basis(profile),
                      tuple(r["mfu_free_cost_usd"] for r in runs))


@pytest.mark.parametrize("pricing", [{"subscription_usd_per_user_month": 20.0},
                                     {"subscription_usd_per_user_month": None, "price_per_request_usd": 0.002}])
def test_vectorized_and_scalar_paths_agree(pricing):
    # Fast growth so the samples need several replicas and the cash path crosses zero in some.
    profile = replace(example_profile(), monthly_growth=0.25, daily_active_users=20_000, cash_usd=600_000, **pricing)
    # With a serving calibration on the serving GPU (efficiencies 0.5 and 0.7 instead of 0.6 and 0.8).
    calibration = {"name": "sc", "device_name": "NVIDIA H100 80GB HBM3", "implied_prefill_efficiency": 0.5,
                   "implied_decode_efficiency": 0.7}
    runs = training_costs(profile)
    point = PointCosts(tuple(r["cost_usd"] for r in runs), tuple(r["mfu"] for r in runs),
                       serving_basis(profile, calibration=calibration), tuple(r["mfu_free_cost_usd"] for r in runs))
    factors = draw(default_ranges(), 12, seed=7)
    sim = simulate(profile, point, factors)
    for i in range(12):
        ref = scalar_sample(profile, {k: float(v[i]) for k, v in factors.items()}, serving_calibration=calibration)
        assert sim["training_cost_usd"][i] == pytest.approx(ref.training_cost_usd, rel=1e-9)
        assert sim["serving_cost_per_month_usd"][i] == pytest.approx(ref.serving_cost_per_month_usd, rel=1e-9)
        assert sim["runway_months_after_training"][i] == pytest.approx(ref.runway_months_after_training, rel=1e-9)
        assert sim["gross_margin_per_request_usd"][i] == pytest.approx(ref.gross_margin_per_request_usd, rel=1e-9, abs=1e-12)
        assert sim["cash"][i] == pytest.approx([m["cash_usd"] for m in ref.months], rel=1e-9)
        assert (None if sim["cash_out_month"][i] < 0 else sim["cash_out_month"][i]) == ref.cash_out_month


def test_a_fine_tuning_plan_is_priced_by_the_fine_tuning_estimator_on_both_paths():
    """Issue 12's seam: a plan's `method` (full / lora / qlora) goes through engine.estimate.finetune, and
    the vectorized path still agrees with the scalar one (its cost is linear in tokens and price, and
    inverse in MFU, like pretraining's)."""
    from engine.estimate.finetune import FinetuneInput, estimate_finetune
    from engine.readiness.profile import TrainingPlan

    plan = TrainingPlan(model="llama-3-8b", tokens=40e6, gpu="h100-sxm", gpus=1, method="qlora")
    profile = replace(example_profile(), training=(plan,))
    (run,) = training_costs(profile)
    direct = estimate_finetune(FinetuneInput(model="llama-3-8b", tokens=40e6, gpu="h100-sxm", gpus=1, method="qlora",
                                             gradient_checkpointing=True, mfu=run["mfu"]))
    assert run["cost_usd"] == pytest.approx(direct.cost_usd, rel=1e-12)
    pretrain = training_costs(replace(profile, training=(replace(plan, method="pretrain"),)))[0]
    assert run["cost_usd"] < pretrain["cost_usd"]  # 4·N per token plus adapters and recompute, not 6·N
    factors = draw(default_ranges(), 6, seed=3)
    sim = simulate(profile, _point(profile), factors)
    for i in range(6):
        ref = scalar_sample(profile, {k: float(v[i]) for k, v in factors.items()})
        assert sim["training_cost_usd"][i] == pytest.approx(ref.training_cost_usd, rel=1e-9)


def _only(key: str, r: Range) -> dict[str, Range]:
    fixed = {k: Range(k, k, "triangular", 1.0, 1.0, 1.0) for k in FACTORS}
    return {**fixed, key: r}


def test_quantiles_converge_to_the_analytic_answer():
    profile = example_profile()
    point = _point(profile)
    cost = point.run_costs[0]
    # GPU price uniform on [0.5, 1.5]: training cost and serving cost are the point values × the factor,
    # so their quantiles are cost × (0.5 + q): P10 0.6, P50 1.0, P90 1.4.
    u = run(profile, point, _only("gpu_price", Range("gpu_price", "GPU price", "uniform", 0.5, 1.0, 1.5)), samples=40_000)
    q = u.quantiles["training_cost_usd"]
    for key, factor in (("p10", 0.6), ("p50", 1.0), ("p90", 1.4)):
        assert q[key] == pytest.approx(cost * factor, rel=0.01)
    serving = u.quantiles["serving_cost_per_month_usd"]
    assert serving["p50"] == pytest.approx(point.basis.price_usd_per_hour * 730 * 1.0, rel=0.01)
    # Tokens triangular(0.9, 1, 1.5): inverse CDF x = a + sqrt(u (b−a)(c−a)) below F(c) = (c−a)/(b−a)
    # = 1/6, else b − sqrt((1−u)(b−a)(b−c)).
    a, c, b = 0.9, 1.0, 1.5

    def inv(p):
        return a + np.sqrt(p * (b - a) * (c - a)) if p < (c - a) / (b - a) else b - np.sqrt((1 - p) * (b - a) * (b - c))

    u = run(profile, point, _only("tokens", Range("tokens", "Tokens", "triangular", a, c, b)), samples=40_000)
    q = u.quantiles["training_cost_usd"]
    for key, p in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
        assert q[key] == pytest.approx(cost * inv(p), rel=0.005)
    # MFU: cost ∝ 1/MFU, so P10 of the cost is the cost over the P90 of the MFU factor.
    u = run(profile, point, _only("mfu", Range("mfu", "MFU", "triangular", a, c, b)), samples=40_000)
    assert u.quantiles["training_cost_usd"]["p10"] == pytest.approx(cost / inv(0.9), rel=0.005)
    # The error shrinks with the sample count (a fixed seed makes this deterministic).
    errors = []
    for n in (100, 40_000):
        u = run(profile, point, _only("gpu_price", Range("gpu_price", "GPU price", "uniform", 0.5, 1.0, 1.5)), samples=n)
        errors.append(abs(u.quantiles["training_cost_usd"]["p90"] / cost - 1.4))
    assert errors[1] < errors[0]


def test_two_thousand_samples_are_fast_and_reproducible():
    profile = example_profile()
    point = _point(profile)
    run(profile, point)  # warm
    start = time.perf_counter()
    a = run(profile, point, samples=2000)
    took = time.perf_counter() - start
    assert took < 0.25, f"2,000 samples took {took:.3f} s"
    assert a == run(profile, point, samples=2000)
    q = a.quantiles["training_cost_usd"]
    assert q["p10"] < q["p50"] < q["p90"]
    assert len(a.fan["p50"]) == 61 and all(lo <= mid <= hi for lo, mid, hi in zip(a.fan["p10"], a.fan["p50"], a.fan["p90"]))
    keys = [row["key"] for row in a.tornado]
    assert sorted(keys) == sorted(FACTORS)


def test_every_range_has_a_source():
    for r in default_ranges().values():
        assert r.source and len(r.date) == 10 and r.low <= r.mode <= r.high
