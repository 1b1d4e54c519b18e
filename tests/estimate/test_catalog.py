"""The reference catalog: exact parameter counts of the presets, and the integrity of the TOML data."""

from __future__ import annotations

import math

import pytest

from engine import catalog
from engine.catalog import GPUSpec, get_gpu, get_model, resolve_gpu, resolve_model
from engine.errors import ValidationError
from engine.estimate.architecture import ModelSpec

# sum(p.numel()) of the reference implementations (Hugging Face checkpoints / official code).
EXACT_PARAMS = {
    "gpt2": 124_439_808,
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "deepseek-v3": 671_026_404_352,
}


@pytest.mark.parametrize("model_id, expected", sorted(EXACT_PARAMS.items()))
def test_params_total_exact(model_id, expected):
    assert get_model(model_id).params_total == expected


def test_dense_models_have_active_equal_total():
    for model_id in EXACT_PARAMS:
        spec = get_model(model_id)
        if not spec.is_moe:
            assert spec.params_active == spec.params_total


def test_mixtral_active_params():
    """Jiang et al. 2024 (Mixtral of Experts): 47B parameters, 13B active per token (top-2 of 8)."""
    spec = get_model("mixtral-8x7b")
    assert spec.params_total == 46_702_792_704
    assert spec.params_active == 12_879_925_248


def test_deepseek_v3_active_params():
    """DeepSeek-V3 report: 671B total, 37B activated per token (main model, MTP module excluded)."""
    spec = get_model("deepseek-v3")
    assert spec.params_total == 671_026_404_352
    assert spec.params_active == 37_552_282_624
    assert spec.params_active == pytest.approx(37e9, rel=0.02)


def test_gpt3_175b():
    """Brown et al. 2020, Table 2.1: 175.0B parameters (the exact shape-derived count is ~174.6B)."""
    assert get_model("gpt3-175b").params_total == pytest.approx(174.6e9, rel=1e-3)


def test_lookup_is_case_insensitive_and_strips():
    assert get_model("  Llama-2-7B ").id == "llama-2-7b"
    assert get_gpu("H100-SXM").id == "h100-sxm"


@pytest.mark.parametrize("bad", ["nope", "", None, 7, 3.5, ["gpt2"], "gpt2 small"])
def test_unknown_model_raises_validation_error(bad):
    with pytest.raises(ValidationError) as info:
        resolve_model(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["nope", "", None, 7, ["h100-sxm"], "h100"])
def test_unknown_gpu_raises_validation_error(bad):
    with pytest.raises(ValidationError) as info:
        resolve_gpu(bad)
    message = str(info.value)
    assert "\n" not in message
    assert "h100-sxm" in message  # names the allowed ids


def test_resolve_passes_specs_through():
    spec = get_model("gpt2")
    gpu = get_gpu("l4")
    assert resolve_model(spec) is spec
    assert resolve_gpu(gpu) is gpu


def test_every_gpu_row_is_sane():
    rows = catalog.gpus()
    assert len(rows) >= 8
    for gpu_id, gpu in rows.items():
        assert isinstance(gpu, GPUSpec)
        assert gpu.id == gpu_id == gpu_id.lower()
        assert gpu.name and gpu.vendor and gpu.source and gpu.date
        for field in ("bf16_tflops", "fp32_tflops", "memory_gb", "bandwidth_gbs", "tdp_w", "price_usd_per_hour"):
            value = getattr(gpu, field)
            assert math.isfinite(value) and value > 0, (gpu_id, field)
        assert gpu.fp8_tflops == 0 or gpu.fp8_tflops > gpu.bf16_tflops
        assert gpu.bf16_tflops > gpu.fp32_tflops
        assert 0 < gpu.typical_mfu <= 0.7
        assert gpu.memory_bytes == gpu.memory_gb * 1e9
        assert gpu.peak_flops("bf16") == gpu.bf16_tflops * 1e12
        assert gpu.peak_flops("fp32") == gpu.fp32_tflops * 1e12
        # no FP8 units: fall back to the bf16 rate
        assert gpu.peak_flops("fp8") == (gpu.fp8_tflops or gpu.bf16_tflops) * 1e12


def test_datasheet_figures():
    """NVIDIA A100 and H100 SXM datasheets: 312 / 989.4 dense BF16 TFLOP/s, 2039 / 3350 GB/s."""
    a100, h100 = get_gpu("a100-80gb"), get_gpu("h100-sxm")
    assert (a100.bf16_tflops, a100.bandwidth_gbs, a100.memory_gb) == (312.0, 2039.0, 80.0)
    assert (h100.bf16_tflops, h100.bandwidth_gbs, h100.memory_gb) == (989.4, 3350.0, 80.0)
    assert get_gpu("a100-40gb").fp8_tflops == 0.0  # Ampere has no FP8 tensor cores


def test_every_model_row_is_sane():
    rows = catalog.models()
    assert set(EXACT_PARAMS) <= set(rows)
    for model_id, spec in rows.items():
        assert isinstance(spec, ModelSpec)
        assert spec.id == model_id
        assert spec.name and spec.source and spec.date
        assert spec.params_total >= spec.params_active > 0
        assert spec.params_matmul_active <= spec.params_active + spec.vocab_size * spec.d_model
        if spec.published_gpu_hours:
            assert spec.published_gpu in catalog.gpus()
            assert spec.train_tokens > 0


def test_defaults():
    d = catalog.defaults()
    for key in ("pue", "grid_kg_co2_per_kwh", "overhead_gb", "prefill_compute_efficiency",
                "decode_bandwidth_efficiency", "max_batch_sequences"):
        assert key in d and math.isfinite(d[key]) and d[key] > 0
    assert 1.0 <= d["pue"] < 2.0
    assert 0 < d["prefill_compute_efficiency"] <= 1 and 0 < d["decode_bandwidth_efficiency"] <= 1
    for row in catalog.default_rows():
        assert row["source"] and row["unit"] and row["date"]


def test_catalog_versions():
    versions = catalog.catalog_versions()
    assert set(versions) == {"gpus", "models", "defaults"}
    assert all(isinstance(v, str) and v for v in versions.values())
