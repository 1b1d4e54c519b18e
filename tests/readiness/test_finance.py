"""The cash model pinned by hand-worked cases (the working is in the comments), and checked against the
estimators it reads."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training
from engine.readiness.finance import ServingBasis, break_even_users, plan, project, serving_basis
from engine.readiness.profile import example_profile

# One replica: 2 GPUs, per-request GPU time 0.5 s (all of it scaled by efficiency) -> 2 requests/s.
BASIS = ServingBasis(model="m", gpu="g", gpus_per_replica=2, concurrency=8, scaled_s=0.5, fixed_s=0.0,
                     price_usd_per_hour=2.5, request_latency_s=1.0, source="estimator")


def _profile(**changes):
    base = replace(example_profile(), training=(), peak_to_average=2.0, monthly_growth=0.0,
                   subscription_usd_per_user_month=None)
    return replace(base, **changes)


def test_runway_margin_and_break_even_by_hand():
    p = _profile(cash_usd=1_000_000, monthly_burn_usd=50_000, daily_active_users=86_400,
                 requests_per_user_per_day=10, price_per_request_usd=0.01)
    r = project(p, BASIS, training_cost_usd=200_000)
    # Load: 86,400 users × 10 requests / 86,400 s = 10 requests/s on average; × 2 peak = 20 requests/s.
    assert r.serving_requests_per_s == pytest.approx(20.0)
    assert r.serving_requests_per_s_average == pytest.approx(10.0)
    # 20 requests/s ÷ 2 per replica = 10 replicas × 2 GPUs = 20 GPUs.
    assert r.serving_gpus_needed == 20
    # 20 GPUs × $2.50 × 730 h = $36,500 a month.
    assert r.serving_cost_per_month_usd == pytest.approx(36_500)
    # Requests a month: 86,400 × 10 × 730/24 days = 26,280,000; × $0.01 = $262,800.
    assert r.revenue_per_month_usd == pytest.approx(262_800)
    # Runway, no revenue: (1,000,000 − 200,000) ÷ (50,000 + 36,500) = 9.2486 months.
    assert r.runway_months_after_training == pytest.approx(800_000 / 86_500)
    # Margin per request: 0.01 − 36,500 / 26,280,000 = 0.01 − 0.0013889 = 0.0086111.
    assert r.gross_margin_per_request_usd == pytest.approx(0.01 - 36_500 / 26_280_000)
    # Break-even: v = 0.01 × 10 × 30.4167 = $3.0417 per user-month; a replica serves u = 2 × 86,400 /
    # (10 × 2) = 8,640 users and costs c = 2 × 2.5 × 730 = $3,650. k = ceil(50,000 / (26,280 − 3,650))
    # = ceil(2.2095) = 3 replicas; U = ceil((50,000 + 3 × 3,650) / 3.0417) = ceil(20,038.4) = 20,039.
    assert r.break_even_users == 20_039
    # Cash: 800,000 at month 0, then + 262,800 − 50,000 − 36,500 = +176,300 a month: never runs out.
    assert r.months[1]["cash_usd"] == pytest.approx(976_300)
    assert r.cash_out_month is None
    assert r.training_share_of_cash == pytest.approx(0.2)


def test_break_even_is_exact_at_the_boundary():
    # With the figures above, 20,039 users cover burn + 3 replicas and 20,038 do not.
    v, u, c = 0.01 * 10 * 730 / 24, 8640.0, 3650.0
    assert 20_039 * v >= 50_000 + c * math.ceil(20_039 / u)
    assert 20_038 * v < 50_000 + c * math.ceil(20_038 / u)
    assert break_even_users(50_000, v, u, c) == 20_039
    # No burn: one replica's users must pay for it: U·v >= c -> U = ceil(3650 / 3.0417) = 1,200.
    assert break_even_users(0, v, u, c) == 1200


def test_cash_runs_out_and_a_negative_margin_is_a_number_not_an_error():
    p = _profile(cash_usd=100_000, monthly_burn_usd=30_000, daily_active_users=864,
                 requests_per_user_per_day=10, price_per_request_usd=0.001)
    r = project(p, BASIS, training_cost_usd=40_000)
    # 864 × 10 / 86,400 = 0.1 requests/s, peak 0.2: one replica (2 GPUs), $3,650 a month.
    assert r.serving_gpus_needed == 2 and r.serving_cost_per_month_usd == pytest.approx(3650)
    # Revenue: 864 × 10 × 30.4167 = 262,800 requests × $0.001 = $262.80.
    assert r.revenue_per_month_usd == pytest.approx(262.8)
    # Margin: 0.001 − 3,650 / 262,800 = 0.001 − 0.0138889 = −0.0128889 per request.
    assert r.gross_margin_per_request_usd == pytest.approx(0.001 - 3650 / 262_800)
    # Cash: 60,000; month 1: 60,000 + 262.8 − 30,000 − 3,650 = 26,612.8; month 2: −6,774.4 -> month 2.
    assert r.months[1]["cash_usd"] == pytest.approx(26_612.8)
    assert r.cash_out_month == 2
    # Runway: 60,000 ÷ 33,650 = 1.783 months.
    assert r.runway_months_after_training == pytest.approx(60_000 / 33_650)
    # A replica's 8,640 users pay 8,640 × $0.30 = $2,628 < $3,650: no number of users breaks even.
    assert r.break_even_users is None


def test_training_beyond_cash_runs_out_at_month_zero():
    p = _profile(cash_usd=10_000, monthly_burn_usd=1_000, price_per_request_usd=0.01)
    r = project(p, BASIS, training_cost_usd=20_000)
    assert r.cash_out_month == 0 and r.runway_months_after_training == 0.0


def test_growth_and_subscription_revenue():
    p = _profile(daily_active_users=1000, monthly_growth=0.1, requests_per_user_per_day=5,
                 subscription_usd_per_user_month=20.0, price_per_request_usd=None)
    r = project(p, BASIS, training_cost_usd=0)
    # Month 3 has 1000 × 1.1² = 1,210 users paying $20: $24,200.
    assert r.months[3]["users"] == pytest.approx(1210)
    assert r.months[3]["revenue_usd"] == pytest.approx(24_200)
    # Per request: $20 ÷ (5 × 30.4167) requests = $0.1315.
    assert r.revenue_per_request_usd == pytest.approx(20 / (5 * 730 / 24))


def test_price_per_million_output_tokens():
    p = _profile(output_tokens=250, price_per_million_output_tokens_usd=8.0, price_per_request_usd=None,
                 daily_active_users=86_400, requests_per_user_per_day=1)
    r = project(p, BASIS, training_cost_usd=0)
    # 250 tokens × $8 / 1e6 = $0.002 per request; 86,400 × 30.4167 requests = 2,628,000 -> $5,256.
    assert r.revenue_per_request_usd == pytest.approx(0.002)
    assert r.revenue_per_month_usd == pytest.approx(5256)


def test_plan_reads_the_estimators():
    p = example_profile()
    r = plan(p)
    t = p.training[0]
    assert r.training_cost_usd == pytest.approx(estimate_training(TrainingInput(model=t.model, tokens=t.tokens, gpu=t.gpu,
                                                                                 gpus=t.gpus)).cost_usd)
    basis = serving_basis(p)
    est = estimate_serving(ServeInput(model=p.serving_model, gpu=p.serving_gpu, gpus=basis.gpus_per_replica,
                                      prompt_tokens=p.prompt_tokens, output_tokens=p.output_tokens,
                                      requests_per_s=r.serving_requests_per_s))
    assert r.serving_gpus_needed == est.gpus_needed
    assert r.serving_speed_source == "estimator"


@pytest.mark.parametrize("s", [0.6, 0.75, 1.0, 1.2])
def test_serving_basis_split_matches_the_estimator_at_any_efficiency(s):
    p = example_profile()
    basis = serving_basis(p)
    est = estimate_serving(ServeInput(model=p.serving_model, gpu=p.serving_gpu, gpus=basis.gpus_per_replica,
                                      prompt_tokens=p.prompt_tokens, output_tokens=p.output_tokens,
                                      prefill_efficiency=0.6 * s, decode_efficiency=0.8 * s))
    assert basis.requests_per_s_per_replica(s) == pytest.approx(est.requests_per_s_per_replica, rel=1e-9)


def test_a_model_too_big_for_the_gpu_is_refused_with_a_reason():
    from engine.errors import ValidationError

    p = replace(example_profile(), serving_model="gpt3-175b", serving_gpu="l4", prompt_tokens=1_000_000)
    with pytest.raises(ValidationError, match="does not fit"):
        serving_basis(p)
