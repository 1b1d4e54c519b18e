"""Properties of the cash model over random profiles (hypothesis): the vectorized path at factor 1 is
the scalar projection, break-even is the exact boundary, and runway and cash behave."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.readiness.finance import ServingBasis, break_even_users, project
from engine.readiness.montecarlo import FACTORS, PointCosts, simulate
from engine.readiness.profile import example_profile

money = st.floats(min_value=0, max_value=1e8, allow_nan=False)
prices = st.sampled_from(["price_per_request_usd", "price_per_million_output_tokens_usd",
                          "subscription_usd_per_user_month"])


@settings(max_examples=60, deadline=None)
@given(cash=money, burn=money, training=money, users=st.floats(1, 1e7), growth=st.floats(-0.5, 1.0),
       rpu=st.floats(0.01, 1000), price_kind=prices, price=st.floats(0, 100), rps=st.floats(0.01, 1000),
       gpus=st.integers(1, 16), hourly=st.floats(0, 50), peak=st.floats(1, 10))
def test_vectorized_equals_scalar_and_runway_is_its_definition(cash, burn, training, users, growth, rpu, price_kind,
                                                               price, rps, gpus, hourly, peak):
    pricing = {"subscription_usd_per_user_month": None, price_kind: price}
    profile = replace(example_profile(), cash_usd=cash, monthly_burn_usd=burn, daily_active_users=users,
                      monthly_growth=growth, requests_per_user_per_day=rpu, peak_to_average=peak, training=(),
                      **pricing)
    basis = ServingBasis(model="m", gpu="g", gpus_per_replica=gpus, concurrency=1, scaled_s=1.0 / rps, fixed_s=0.0,
                         price_usd_per_hour=hourly, request_latency_s=1.0, source="estimator")
    ref = project(profile, basis, training)
    sim = simulate(profile, PointCosts((training,), (0.5,), basis), {k: np.ones(1) for k in FACTORS})
    assert math.isclose(sim["serving_cost_per_month_usd"][0], ref.serving_cost_per_month_usd, rel_tol=1e-9, abs_tol=1e-9)
    assert np.allclose(sim["cash"][0], [m["cash_usd"] for m in ref.months], rtol=1e-9, atol=1e-6)
    spend = burn + ref.serving_cost_per_month_usd
    if spend > 0:
        assert math.isclose(ref.runway_months_after_training, max(0.0, cash - training) / spend, rel_tol=1e-12)
    assert ref.serving_gpus_needed >= gpus and ref.serving_gpus_needed % gpus == 0
    if training > cash:
        assert ref.cash_out_month == 0


@settings(max_examples=200, deadline=None)
@given(burn=st.floats(0, 1e7), v=st.floats(0.01, 1000), u=st.floats(1, 1e6), c=st.floats(0, 1e6))
def test_break_even_is_the_smallest_user_count_that_covers_the_month(burn, v, u, c):
    users = break_even_users(burn, v, u, c)

    def gap(n: int) -> float:
        """Revenue minus spend of n daily users in a month, relative to the spend's size."""
        spend = burn + c * max(1, math.ceil(n / u))
        return (n * v - spend) / max(1.0, spend)

    if users is None:
        assert v * u <= c  # each replica's users pay at most what it costs
        return
    assert gap(users) >= -1e-9  # break-even users cover the month
    if users > 1:
        assert gap(users - 1) < 1e-9  # one fewer does not
