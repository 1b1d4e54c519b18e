"""The CUDA paths of the lab: bf16 autocast training, fused AdamW, calibrate's MFU against the
datasheet peak, memory predicted vs measured, the out-of-memory answer. They skip without a GPU
(this project's CI machine has none); run them on a GPU machine with `pytest -m gpu tests/lab`."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)"),
]


def test_bf16_training_on_cuda_learns_and_reports_mfu(tmp_path):
    from engine.lab.trainer import TrainConfig, train

    result = train(TrainConfig(sample="arithmetic", preset="tiny", max_steps=60, device="cuda", out=str(tmp_path / "run"),
                               eval_every=30))
    assert result.device == "cuda" and result.dtype in ("bf16", "fp16")
    assert result.val_loss < 3.0
    assert result.mfu is not None and 0 < result.mfu < 1
    assert result.peak_memory_bytes and result.peak_memory_bytes > 0


def test_calibrate_on_cuda_gives_plausible_mfu_and_memory_near_the_estimate():
    from engine.lab.calibrate import CalibrateInput, calibrate

    out = calibrate(CalibrateInput(preset="shakespeare-char", device="cuda", steps=10, warmup=3))
    assert 0.01 < out.mfu < 0.9, out
    assert out.peak_memory_bytes > 0 and out.predicted_memory_bytes > 0
    # The estimator and the allocator agree within a factor of two for this model (workspace and
    # allocator rounding excluded from the estimate).
    assert 0.5 < out.peak_memory_bytes / out.predicted_memory_bytes < 2.0, out


def test_out_of_memory_is_one_line_with_a_smaller_batch(tmp_path):
    from engine.errors import RunError
    from engine.lab.trainer import TrainConfig, train

    free, _ = torch.cuda.mem_get_info()
    # A batch far beyond the card: gpt2-small activations at 1024 tokens are ~MBs per sequence.
    batch = int(free / 2**20)
    with pytest.raises(RunError, match="batch-size"):
        train(TrainConfig(sample="stories", preset="gpt2-small", max_steps=1, batch_size=batch, device="cuda",
                          out=str(tmp_path / "oom")))
