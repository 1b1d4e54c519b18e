"""The estimator pages read the lab's latest calibration: the Training cost page offers its measured
MFU, the Memory page shows predicted vs measured memory; without a calibration neither appears."""

from __future__ import annotations

from engine.store import Registry
from tests.pages.conftest import metrics, run_page


def _calibrated(tmp_path) -> None:
    reg = Registry()
    reg.create_run("cal", {}, tmp_path / "runs" / "cal", kind="calibrate", status="running")
    reg.set_status("cal", "finished", summary={
        "preset": "tiny", "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "dtype": "bf16", "batch_size": 32,
        "context": 128, "tokens_per_s": 1.0e6, "achieved_tflops": 300.0, "mfu": 0.3, "mfu_basis": "datasheet",
        "peak_memory_bytes": 3 * 2**30, "predicted_memory_bytes": 2 * 2**30})


def test_without_a_calibration_nothing_measured_is_offered():
    at = run_page("views/train.py")
    assert "Measured MFU" not in at.radio(key="basis").options
    at = run_page("views/memory.py")
    assert "Measured / predicted" not in metrics(at)


def test_measured_mfu_drives_the_training_estimate(tmp_path):
    _calibrated(tmp_path)
    at = run_page("views/train.py")
    assert "Measured MFU" in at.radio(key="basis").options
    at.radio(key="basis").set_value("Measured MFU").run()
    assert not at.exception and not at.error
    assert metrics(at)["MFU"] == "30.0%"


def test_memory_page_shows_predicted_vs_measured(tmp_path):
    _calibrated(tmp_path)
    shown = metrics(run_page("views/memory.py"))
    assert shown["Measured / predicted"] == "1.50×"
    assert shown["Measured"] == "3.00 GiB" and shown["Predicted (this estimator)"] == "2.00 GiB"
