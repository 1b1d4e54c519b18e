"""Bench rows and the attention sweep; serving calibration recorded in the registry; demo mode refuses it."""

from __future__ import annotations

import pytest

from engine.errors import ValidationError
from engine.infer.bench import BenchInput, bench
from engine.infer.serve_calibrate import ServeCalibrateInput, calibrate_serve
from engine.artifacts import latest_serving_calibration


def test_bench_rows_side_by_side(lm_run):
    r = bench(BenchInput(run=str(lm_run), backends=("torch", "onnxruntime", "tensorrt"), batch=2, seq_len=16,
                         warmup=1, iters=3))
    rows = {x["backend"]: x for x in r.results}
    assert set(rows) == {"torch", "onnxruntime", "tensorrt"}
    for name in ("torch", "onnxruntime"):
        x = rows[name]
        assert x["available"] and 0 < x["p50_ms"] <= x["p90_ms"] and x["throughput_per_s"] > 0
        assert x["rel_err"] <= 1e-5
    if not rows["tensorrt"]["available"]:
        assert rows["tensorrt"]["reason"] and rows["tensorrt"]["p50_ms"] is None
    assert r.load_average is None or len(r.load_average) == 3


def test_attention_sweep_reports_tflops_against_roofline(lm_run):
    r = bench(BenchInput(run=str(lm_run), backends=("torch", "onnxruntime"), part="attention", batch=2,
                         seq_lens=(8, 32), warmup=1, iters=3))
    assert [x["seq_len"] for x in r.sweep] == [8, 8, 32, 32]
    assert r.roofline_tflops > 0 and "measured" in r.roofline_basis
    assert all(x["tflops"] > 0 and x["rel_err"] <= 1e-5 for x in r.sweep)


def test_bench_bad_arguments(lm_run):
    with pytest.raises(ValidationError, match="exactly one"):
        bench(BenchInput(run=str(lm_run), preset="tiny"))
    with pytest.raises(ValidationError, match="seq-len"):
        bench(BenchInput(run=str(lm_run), seq_len=10_000))
    with pytest.raises(ValidationError, match="unknown backend"):
        bench(BenchInput(run=str(lm_run), backends=("tpu",)))


def test_serving_calibration_recorded_and_read_back(lm_run):
    from engine.store import Registry

    r = calibrate_serve(ServeCalibrateInput(run=str(lm_run), backend="onnxruntime", levels=(1, 2), output_tokens=4,
                                            repeats=1), registry=Registry())
    assert [x["concurrency"] for x in r.levels] == [1, 2]
    for x in r.levels:
        assert x["measured_prefill_s"] > 0 and x["predicted_prefill_s"] > 0
        assert x["measured_decode_tokens_per_s"] > 0 and x["predicted_decode_tokens_per_s"] > 0
    assert r.bandwidth_gbs > 0 and r.peak_tflops > 0
    latest = latest_serving_calibration()
    assert latest["implied_decode_efficiency"] == pytest.approx(r.implied_decode_efficiency)


def test_serving_calibration_is_a_write_refused_in_demo_mode(lm_run, monkeypatch):
    from engine.store import Registry

    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    with pytest.raises(ValidationError, match="read-only demo"):
        calibrate_serve(ServeCalibrateInput(run=str(lm_run), levels=(1,), output_tokens=2, repeats=1),
                        registry=Registry())


def test_serving_page_offers_measured_efficiencies(lm_run):
    from streamlit.testing.v1 import AppTest

    from engine.store import Registry
    from tests.pages.conftest import ROOT, assert_clean

    if latest_serving_calibration() is None:
        calibrate_serve(ServeCalibrateInput(run=str(lm_run), backend="torch", levels=(1,), output_tokens=2, repeats=1),
                        registry=Registry())
    at = AppTest.from_file(str(ROOT / "views/serve.py"), default_timeout=60).run()
    before = {m.label: m.value for m in at.metric}
    at.toggle(key="serve-measured").set_value(True).run()
    assert_clean(at)
    assert any("Measured (" in c.value for c in at.caption)
    assert {m.label: m.value for m in at.metric} != before
