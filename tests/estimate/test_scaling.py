"""Compute-optimal sizing with the Chinchilla parametric loss."""

from __future__ import annotations

import math

import pytest

from engine.catalog import get_gpu
from engine.errors import ValidationError
from engine.estimate.scaling import DEFAULT_FIT, FITS, OptimalInput, estimate_optimal, get_fit, predicted_loss

CHINCHILLA_FLOPS = 5.76e23  # Hoffmann et al. 2022: the Gopher / Chinchilla budget


def test_default_fit_recovers_chinchilla():
    """Besiroglu et al. 2024: their refit puts the 5.76e23-FLOP optimum at Chinchilla's 70B / 1.4T."""
    assert DEFAULT_FIT == "besiroglu2024"
    est = estimate_optimal(OptimalInput(flops=CHINCHILLA_FLOPS))
    assert est.params == pytest.approx(70e9, rel=0.08)
    assert est.tokens == pytest.approx(1.4e12, rel=0.10)
    assert 6 * est.params * est.tokens == pytest.approx(CHINCHILLA_FLOPS, rel=1e-12)
    assert est.fit == "besiroglu2024" and est.gpu is None and est.cost_usd is None and est.gpu_hours is None


def test_hoffmann_rounded_constants_give_a_smaller_model():
    """Besiroglu et al. 2024, Sec. 1: Hoffmann's published (rounded) constants imply a much smaller
    compute-optimal model than Chinchilla itself, ~32B at 5.76e23."""
    est = estimate_optimal(OptimalInput(flops=CHINCHILLA_FLOPS, fit="hoffmann2022"))
    assert est.params < 40e9
    assert 6 * est.params * est.tokens == pytest.approx(CHINCHILLA_FLOPS, rel=1e-12)


def test_hoffmann_loss_at_chinchilla():
    """L(N, D) = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 (Hoffmann et al. 2022, eq. 2 with Sec. 3.3 fit)."""
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    assert predicted_loss(70e9, 1.4e12, "hoffmann2022") == pytest.approx(expected, rel=1e-12)
    assert predicted_loss(70e9, 1.4e12, "hoffmann2022") == pytest.approx(1.9366, abs=1e-4)


def test_hoffmann_exponents():
    """Hoffmann et al. 2022, Table 2, approach 3: N_opt ∝ C^0.46 and D_opt ∝ C^0.54 (the rounded
    constants give β/(α+β) = 0.452 and α/(α+β) = 0.548)."""
    fit = get_fit("hoffmann2022")
    n1, d1 = fit.optimal(1e22)
    n2, d2 = fit.optimal(1e24)
    a = math.log(n2 / n1) / math.log(100)
    b = math.log(d2 / d1) / math.log(100)
    assert a == pytest.approx(0.28 / 0.62, rel=1e-9)
    assert a == pytest.approx(0.46, abs=0.01) and b == pytest.approx(0.54, abs=0.01)
    assert a + b == pytest.approx(1)


def test_about_20_tokens_per_parameter():
    """Hoffmann et al. 2022 (Table 3) and Besiroglu et al. 2024: roughly 20 tokens per parameter
    around the Chinchilla budget."""
    est = estimate_optimal(OptimalInput(flops=CHINCHILLA_FLOPS))
    assert 15 < est.tokens_per_param < 25
    assert est.tokens_per_param == pytest.approx(est.tokens / est.params)


def test_optimum_minimises_loss_on_the_compute_frontier():
    for name, fit in FITS.items():
        n, d = fit.optimal(1e23)
        best = fit.loss(n, d)
        for k in (0.5, 0.8, 1.25, 2.0):
            assert fit.loss(n * k, d / k) > best, name


def test_more_compute_lower_loss():
    losses = [estimate_optimal(OptimalInput(flops=c)).predicted_loss for c in (1e18, 1e20, 1e22, 1e24, 1e26)]
    assert losses == sorted(losses, reverse=True)
    assert all(loss > FITS[DEFAULT_FIT].E for loss in losses)


@pytest.mark.parametrize("budget", [1e3, 1e6, 2.5e7])
@pytest.mark.parametrize("gpu_id", ["h100-sxm", "a100-80gb", "l4"])
def test_dollar_budget(budget, gpu_id):
    gpu = get_gpu(gpu_id)
    est = estimate_optimal(OptimalInput(budget_usd=budget, gpu=gpu_id))
    assert est.cost_usd == pytest.approx(budget, rel=1e-12)
    assert est.gpu_hours == pytest.approx(budget / gpu.price_usd_per_hour)
    assert est.flops == pytest.approx(est.gpu_hours * 3600 * gpu.bf16_tflops * 1e12 * gpu.typical_mfu)
    assert 6 * est.params * est.tokens == pytest.approx(est.flops)


def test_dollar_budget_overrides():
    est = estimate_optimal(OptimalInput(budget_usd=1e6, gpu="h100-sxm", mfu=0.5, price_usd_per_hour=2.0))
    assert est.cost_usd == pytest.approx(1e6)
    assert est.gpu_hours == pytest.approx(5e5)
    assert est.flops == pytest.approx(5e5 * 3600 * 989.4e12 * 0.5)


def test_flops_with_gpu_reports_cost():
    est = estimate_optimal(OptimalInput(flops=CHINCHILLA_FLOPS, gpu="a100-80gb"))
    gpu = get_gpu("a100-80gb")
    assert est.gpu_hours == pytest.approx(CHINCHILLA_FLOPS / (312e12 * gpu.typical_mfu * 3600))
    assert est.cost_usd == pytest.approx(est.gpu_hours * gpu.price_usd_per_hour)


@pytest.mark.parametrize("kw", [
    dict(), dict(flops=1e23, budget_usd=1e6, gpu="h100-sxm"), dict(budget_usd=1e6), dict(flops=0),
    dict(flops=-1e20), dict(flops=float("nan")), dict(flops=float("inf")), dict(flops=1e40), dict(flops=1e5),
    dict(flops="lots"), dict(budget_usd=0, gpu="h100-sxm"), dict(budget_usd=-5, gpu="h100-sxm"),
    dict(budget_usd=1e6, gpu="h100-sxm", price_usd_per_hour=0), dict(budget_usd=1e6, gpu="nope"),
    dict(flops=1e23, fit="kaplan2020"), dict(flops=1e23, gpu="h100-sxm", mfu=0),
    dict(flops=1e23, gpu="h100-sxm", mfu=2), dict(flops=1e23, gpu="h100-sxm", price_usd_per_hour=-1),
    dict(budget_usd=1e-300, gpu="h100-sxm"), dict(flops=10**400),
])
def test_bad_optimal_input(kw):
    with pytest.raises(ValidationError) as info:
        estimate_optimal(OptimalInput(**kw))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("args", [(0, 1e12), (70e9, 0), (float("nan"), 1e12), (70e9, -1), ("x", 1e12)])
def test_bad_predicted_loss_input(args):
    with pytest.raises(ValidationError):
        predicted_loss(*args)
    with pytest.raises(ValidationError):
        predicted_loss(70e9, 1.4e12, "nope")
