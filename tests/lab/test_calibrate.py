"""Calibration measures a few steps of a preset and reports predicted next to measured memory."""

from __future__ import annotations

import pytest

from engine.errors import ValidationError
from engine.lab.calibrate import CalibrateInput, calibrate
from engine.lab.device import gpu_peak_flops


def test_calibrate_tiny_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path))
    from engine.store import Registry

    reg = Registry()
    r = calibrate(CalibrateInput(preset="tiny", device="cpu", batch_size=2, steps=2, warmup=1, context=32), registry=reg)
    assert r.device == "cpu" and r.dtype == "fp32" and r.batch_size == 2 and r.context == 32
    assert r.tokens_per_s > 0 and r.step_s > 0
    assert r.achieved_tflops == pytest.approx(r.flops_per_token * r.tokens_per_s / 1e12)
    assert r.mfu == pytest.approx(r.achieved_tflops / r.peak_tflops_used)
    assert r.predicted_memory_bytes and r.predicted_memory_bytes > 16 * r.params  # 16 B/param + activations
    assert r.peak_memory_bytes and r.peak_memory_bytes > 0
    runs = reg.list_runs(kind="calibrate")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "finished"


def test_calibrate_rejects_bad_input():
    with pytest.raises(ValidationError):
        calibrate(CalibrateInput(preset="nope", device="cpu"))
    with pytest.raises(ValidationError):
        calibrate(CalibrateInput(preset="tiny", device="cpu", steps=0))
    with pytest.raises(ValidationError, match="fp16 needs CUDA"):
        calibrate(CalibrateInput(preset="tiny", device="cpu", dtype="fp16"))


@pytest.mark.parametrize("name, gid", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA A100-SXM4-80GB", None),
    ("NVIDIA L4", "l4"), ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("NVIDIA H200", "h200"),
])
def test_gpu_peak_lookup(name, gid):
    peak, found = gpu_peak_flops(name, "bf16")
    if gid is None:
        assert found.startswith("a100") and peak == pytest.approx(312e12)
    else:
        assert found == gid and peak > 1e14
