"""Backends: capability reasons, no silent fallback, dtype refusals, equal outputs, KV cache == recompute."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ValidationError
from engine.infer import backends
from engine.infer import capabilities as bk
from engine.infer.generate import Stream

AVAILABLE = [b.name for b in bk.list_backends() if b.available and b.name != "torch-compile"]
GPU = [b for b in bk.list_backends() if b.device.startswith("cuda")]


def test_every_backend_reports_availability_with_a_reason():
    rows = bk.list_backends()
    assert [r.name for r in rows] == list(bk.BACKENDS)
    for r in rows:
        assert r.available or r.reason.split(":")[0] in ("no GPU", "package missing", "library missing"), r
        assert r.dtypes


def test_missing_packages_are_named(monkeypatch):
    monkeypatch.setattr(bk, "_has", lambda m: m != "onnxruntime" and m != "tensorrt")
    assert bk.backend_info("onnxruntime").reason.startswith("package missing: onnxruntime")
    assert bk.backend_info("tensorrt").reason.startswith("package missing: tensorrt")
    assert not bk.backend_info("onnxruntime-cuda").available


def test_unavailable_backend_is_an_error_not_a_fallback():
    missing = [b for b in bk.list_backends() if not b.available]
    if not missing:
        pytest.skip("every backend is available on this machine")
    with pytest.raises(ValidationError, match="not available here"):
        bk.resolve_backend(missing[0].name)
    with pytest.raises(ValidationError, match="unknown backend"):
        bk.resolve_backend("tensorflow")


def test_auto_picks_the_fastest_available_and_says_which():
    name, how = bk.resolve_backend("auto")
    first = next(n for n in bk.SPEED_ORDER if bk.backend_info(n).available)
    assert name == first and how.startswith(f"auto: {first}")


def test_dtype_a_backend_cannot_run_names_the_ones_it_can():
    with pytest.raises(ValidationError, match="cannot run 'bf16'.*fp32, fp16, int8"):
        bk.check_dtype("onnxruntime", "bf16")


@pytest.mark.parametrize("backend", AVAILABLE)
def test_backends_compute_the_same_logits(lm, backend):
    import torch

    ids = np.random.default_rng(1).integers(0, lm.config.vocab_size, (3, 17))
    with torch.no_grad():
        ref = lm.model(torch.from_numpy(ids)).numpy()
    r = backends.make_runner(lm, backend, "fp32")
    got = r.forward(ids)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5


@pytest.mark.parametrize("backend, dtype", [("torch", "bf16"), ("onnxruntime", "fp16")])
def test_low_precision_within_1e_2(lm, backend, dtype):
    import torch

    if not bk.backend_info(backend).available:
        pytest.skip(bk.backend_info(backend).reason)
    ids = np.random.default_rng(2).integers(0, lm.config.vocab_size, (2, 20))
    with torch.no_grad():
        ref = lm.model(torch.from_numpy(ids)).numpy()
    got = backends.make_runner(lm, backend, dtype).forward(ids)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-2


@pytest.mark.parametrize("backend", AVAILABLE)
def test_greedy_kv_cache_tokens_equal_full_recompute(lm, backend):
    """40 new tokens with a context of 32: the cache is rebuilt when the window fills, both ways alike."""
    r = backends.make_runner(lm, backend, "fp32")
    cached = Stream(lm, r, "Once upon a time", max_new_tokens=40, temperature=0).result()
    full = Stream(lm, r, "Once upon a time", max_new_tokens=40, temperature=0, use_cache=False).result()
    assert cached.tokens == full.tokens and len(cached.tokens) == 40


def test_classifier_backends_agree(cls):
    import torch

    ids = np.random.default_rng(3).integers(0, cls.config.vocab_size, (2, 9))
    with torch.no_grad():
        ref = cls.model(torch.from_numpy(ids)).numpy()
    for name in AVAILABLE:
        got = backends.make_runner(cls, name, "fp32").forward(ids)
        assert got.shape == ref.shape and np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5, name


@pytest.mark.gpu
@pytest.mark.skipif(not any(b.available for b in GPU), reason="no GPU backend here: " + "; ".join(
    f"{b.name}: {b.reason}" for b in GPU))
@pytest.mark.parametrize("backend", [b.name for b in GPU])
def test_gpu_backends_match_and_cache(lm, backend):
    info = bk.backend_info(backend)
    if not info.available:
        pytest.skip(info.reason)
    import torch

    ids = np.random.default_rng(4).integers(0, lm.config.vocab_size, (2, 16))
    with torch.no_grad():
        ref = lm.model(torch.from_numpy(ids)).numpy()
    r = backends.make_runner(lm, backend, "fp32")
    assert np.abs(r.forward(ids) - ref).max() / np.abs(ref).max() <= 1e-3  # TF32 allowed on GPUs
    cached = Stream(lm, r, "Once upon", max_new_tokens=40, temperature=0).result()
    full = Stream(lm, r, "Once upon", max_new_tokens=40, temperature=0, use_cache=False).result()
    assert cached.tokens == full.tokens
    if "fp16" in info.dtypes:
        half = backends.make_runner(lm, backend, "fp16").forward(ids)
        assert np.abs(half - ref).max() / np.abs(ref).max() <= 1e-2


@pytest.mark.skipif(not __import__("os").environ.get("PREFLIGHT_COMPILE_TESTS"),
                    reason="torch.compile takes minutes on a 2-core CPU; set PREFLIGHT_COMPILE_TESTS=1 (gpu_check.sh does)")
def test_torch_compile_matches_eager(lm):
    import torch

    info = bk.backend_info("torch-compile")
    if not info.available:
        pytest.skip(info.reason)
    ids = np.random.default_rng(5).integers(0, lm.config.vocab_size, (2, 11))
    with torch.no_grad():
        ref = lm.model(torch.from_numpy(ids)).numpy()
    r = backends.make_runner(lm, "torch-compile", "fp32")
    assert np.abs(r.forward(ids) - ref).max() / np.abs(ref).max() <= 1e-5
    logits, cache = r.prefill(ids[:, :10])
    step, _ = r.step(ids[:, 10:], cache, 10)
    assert np.abs(step - ref[:, -1]).max() / np.abs(ref).max() <= 1e-5
