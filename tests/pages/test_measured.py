"""The estimator pages read the lab's latest calibration: the Training cost page offers its measured
MFU, the Memory page shows predicted vs measured memory; without a calibration neither appears."""

from __future__ import annotations

from engine.store import Registry
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import ROOT
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


def _cpu_calibration(tmp_path, **summary) -> None:
    reg = Registry()
    reg.create_run("cal-cpu", {}, tmp_path / "runs" / "cal-cpu", kind="calibrate", status="running")
    reg.set_status("cal-cpu", "finished", summary={
        "preset": "tiny", "device": "cpu", "device_name": "x86_64 CPU", "dtype": "fp32", "batch_size": 16,
        "context": 128, "tokens_per_s": 5e3, "achieved_tflops": 0.01, "mfu": 0.2, "mfu_basis": "measured", **summary})


def test_memory_page_compares_cpu_parts_and_keeps_rss_apart(tmp_path):
    """On a CPU the measured figure is the counted tensors, part by part; the RSS rise is its own metric."""
    measured = {"weights_bytes": 3 * 2**20, "gradients_bytes": 3 * 2**20, "optimizer_bytes": 6 * 2**20,
                "activations_bytes": 76 * 2**20}
    predicted = {**measured, "activations_bytes": 80 * 2**20}
    _cpu_calibration(tmp_path, peak_memory_bytes=88 * 2**20, predicted_memory_bytes=92 * 2**20,
                     measured_parts=measured, predicted_parts=predicted, rss_rise_bytes=252 * 2**20)
    at = run_page("views/memory.py")
    shown = metrics(at)
    assert shown["Measured"] == "88.00 MiB" and shown["Predicted (this estimator)"] == "92.00 MiB"
    assert shown["Measured / predicted"] == "0.96×"
    assert shown["Process RSS rise (not comparable)"] == "252.00 MiB"
    table = at.dataframe[-1].value
    assert table["part"].tolist() == ["Weights", "Gradients", "Optimizer", "Activations"]
    assert table.set_index("part").loc["Activations", "measured / predicted"] == "0.95×"


def test_an_old_cpu_calibration_is_not_shown_as_a_comparison(tmp_path):
    """Recorded before the parts were counted, a CPU calibration's figure was the RSS rise (2.7× the
    estimate for tiny): shown as RSS, labelled, never as 'measured / predicted'."""
    _cpu_calibration(tmp_path, peak_memory_bytes=252 * 2**20, predicted_memory_bytes=92 * 2**20)
    at = run_page("views/memory.py")
    shown = metrics(at)
    assert "Measured / predicted" not in shown and "Measured" not in shown
    assert shown["Process RSS rise (not comparable)"] == "252.00 MiB"
    assert any("Run the calibration again" in i.value for i in at.info)


def test_overview_quotes_the_tiny_presets_measured_run():
    """Issue 11 item 13 on the Overview: no 'about a minute' promise, the figure lab_presets.toml records."""
    from engine.catalog import lab_preset_file
    from engine.units import format_wall_time

    tiny = next(r for r in lab_preset_file()["preset"] if r["id"] == "tiny")
    at = AppTest.from_file(str(ROOT / "views/home.py"), default_timeout=60)
    at.run()
    captions = " ".join(c.value for c in at.caption)
    assert f"({format_wall_time(tiny['cpu_run_s'])} for its 300 steps on a 2-core CPU, measured)" in captions
    assert "about a minute" not in captions
