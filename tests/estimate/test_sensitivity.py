"""Sensitivity tables agree with single estimates, and the serving comparison picks the cheapest group."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.estimate.models import get_model
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.sensitivity import serving_by_gpu

BASE = ServeInput(model="llama-3-70b", gpu="h100-sxm", prompt_tokens=1000, output_tokens=250)


@pytest.fixture(scope="module")
def table():
    return serving_by_gpu(BASE)


def test_each_row_is_a_single_estimate_at_its_group_size(table):
    for row in table.itertuples():
        est = estimate_serving(replace(BASE, gpu=row.gpu, gpus=row.gpus_per_replica,
                                       price_usd_per_hour=None if row.gpu != "h100-sxm" else BASE.price_usd_per_hour))
        assert est.fits
        assert est.cost_per_million_output_tokens_usd == pytest.approx(row.cost_per_million_output_tokens_usd)
        assert est.time_per_output_token_s * 1e3 == pytest.approx(row.time_per_output_token_ms)


def test_each_row_is_the_cheapest_group_up_to_a_node(table):
    heads = get_model("llama-3-70b").n_heads
    for row in table.itertuples():
        assert heads % row.gpus_per_replica == 0
        for d in (1, 2, 4, 8):
            est = estimate_serving(replace(BASE, gpu=row.gpu, gpus=d))
            if est.fits:
                assert row.cost_per_million_output_tokens_usd <= est.cost_per_million_output_tokens_usd + 1e-12


def test_smallest_fitting_group_is_not_always_cheapest(table):
    """One H200 holds Llama 3 70B in bf16 but leaves room for few sequences; two are cheaper per token."""
    h200 = table.set_index("gpu").loc["h200"]
    one = estimate_serving(replace(BASE, gpu="h200", gpus=1))
    assert one.fits and h200.gpus_per_replica > 1
    assert h200.cost_per_million_output_tokens_usd < one.cost_per_million_output_tokens_usd


def test_gpus_that_cannot_hold_the_model_are_left_out():
    """A 10M-token DeepSeek-V3 context needs pipeline stages beyond 128-way TP on every catalog GPU except
    those with the most memory; an L4 never holds it in one tensor-parallel group."""
    rows = serving_by_gpu(replace(BASE, model="deepseek-v3", prompt_tokens=10_000_000, output_tokens=10))
    assert "l4" not in set(rows["gpu"])
    for row in rows.itertuples():
        assert estimate_serving(replace(BASE, model="deepseek-v3", prompt_tokens=10_000_000, output_tokens=10,
                                        gpu=row.gpu, gpus=row.gpus_per_replica)).fits


def test_empty_tables_keep_their_columns_and_charts_explain_themselves():
    from engine import charts
    from engine.estimate.sensitivity import SERVING_BY_GPU_COLUMNS

    rows = serving_by_gpu(replace(BASE, model="deepseek-v3", prompt_tokens=10_000_000, output_tokens=10),
                          gpu_ids=["l4", "a10g"])
    assert rows.empty and list(rows.columns) == SERVING_BY_GPU_COLUMNS
    fig = charts.serving_cost_by_gpu(rows)
    assert fig.layout.annotations and "no GPU type" in fig.layout.annotations[0].text
