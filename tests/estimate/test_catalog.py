"""The reference catalog: exact parameter counts of the presets, and the integrity of the TOML data."""

from __future__ import annotations

import math

import pytest

from engine import catalog
from engine.estimate import models as model_specs
from engine.catalog import GPUSpec, get_gpu, resolve_gpu
from engine.estimate.models import get_model, resolve_model
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
    # 671,026,404,352 weights + 58 MoE layers x 256 router biases (e_score_correction_bias)
    "deepseek-v3": 671_026_419_200,
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
    """DeepSeek-V3 report: 671B total, 37B activated per token (main model, MTP module excluded).
    Both counts include the 58·256 = 14,848 router biases of the reference MoEGate."""
    spec = get_model("deepseek-v3")
    assert spec.params_total == 671_026_404_352 + 58 * 256 == 671_026_419_200
    assert spec.params_active == 37_552_282_624 + 58 * 256 == 37_552_297_472
    assert spec.params_total == pytest.approx(671e9, rel=1e-3)
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
        for field in ("bf16_tflops", "fp32_tflops", "memory_gib", "bandwidth_gbs", "tdp_w", "price_usd_per_hour"):
            value = getattr(gpu, field)
            if field == "fp32_tflops" and value == 0:  # not published: the row must say so
                assert "FP32 not published" in gpu.source, gpu_id
                continue
            assert math.isfinite(value) and value > 0, (gpu_id, field)
        assert gpu.platform in catalog.PLATFORMS and gpu.cuda == (gpu.platform == "CUDA")
        assert gpu.cuda == (gpu.vendor == "nvidia"), gpu_id  # AMD runs ROCm, Huawei CANN
        # a price with no list behind it says so
        assert "price:" in gpu.source.lower(), gpu_id
        assert gpu.fp8_tflops == 0 or gpu.fp8_tflops > gpu.bf16_tflops
        assert gpu.bf16_tflops > gpu.fp32_tflops
        assert 0 < gpu.typical_mfu <= 0.7
        assert gpu.memory_bytes == gpu.memory_gib * 2**30
        # FP8 MFU: only where there are FP8 units, below the bf16 figure (FP8 training keeps much of its
        # work in bf16), yet FP8 training still runs faster than bf16 at the defaults
        if gpu.fp8_tflops == 0:
            assert gpu.typical_mfu_fp8 == 0
            assert gpu.typical_mfu_for("fp8") == gpu.typical_mfu  # against the bf16 fallback peak
        else:
            assert 0 < gpu.typical_mfu_fp8 < gpu.typical_mfu
            assert gpu.typical_mfu_for("fp8") == gpu.typical_mfu_fp8
            assert gpu.fp8_tflops * gpu.typical_mfu_fp8 > gpu.bf16_tflops * gpu.typical_mfu
        assert gpu.typical_mfu_for("bf16") == gpu.typical_mfu_for("fp32") == gpu.typical_mfu
        assert gpu.peak_flops("bf16") == gpu.bf16_tflops * 1e12
        assert gpu.peak_flops("fp32") == gpu.fp32_tflops * 1e12
        # no FP8 units: fall back to the bf16 rate
        assert gpu.peak_flops("fp8") == (gpu.fp8_tflops or gpu.bf16_tflops) * 1e12


def test_datasheet_figures():
    """NVIDIA A100 and H100 SXM datasheets: 312 / 989.4 dense BF16 TFLOP/s, 2039 / 3350 GB/s, and
    80 GiB of HBM (the "80GB" of the name is binary: 80·2**30 bytes)."""
    a100, h100 = get_gpu("a100-80gb"), get_gpu("h100-sxm")
    assert (a100.bf16_tflops, a100.bandwidth_gbs, a100.memory_gib) == (312.0, 2039.0, 80.0)
    assert (h100.bf16_tflops, h100.bandwidth_gbs, h100.memory_gib) == (989.4, 3350.0, 80.0)
    assert get_gpu("a100-40gb").fp8_tflops == 0.0  # Ampere has no FP8 tensor cores


def test_gpu_memory_is_binary():
    """HBM is built in powers of two: an "80GB" H100 holds 80 GiB = 85,899,345,920 bytes, not 80e9."""
    h100 = get_gpu("h100-sxm")
    assert h100.memory_bytes == 80 * 2**30 == 85_899_345_920
    assert get_gpu("a100-40gb").memory_bytes == 40 * 2**30
    assert get_gpu("h200").memory_bytes == 141 * 2**30


def test_fp8_default_mfu():
    """FP8 training is measured against the FP8 peak with its own, lower MFU (H100 SXM: 25%); a GPU
    without FP8 units falls back to its bf16 peak and bf16 MFU."""
    h100 = get_gpu("h100-sxm")
    assert (h100.fp8_tflops, h100.typical_mfu_fp8) == (1978.9, 0.25)
    assert h100.typical_mfu_for("fp8") == 0.25
    assert h100.typical_mfu_for("bf16") == 0.40
    a100 = get_gpu("a100-80gb")
    assert a100.typical_mfu_fp8 == 0.0 and a100.typical_mfu_for("fp8") == 0.40
    # a hand-made GPU with FP8 units but no FP8 MFU given uses the bf16 figure
    custom = GPUSpec(id="x", name="X", vendor="x", bf16_tflops=100, fp8_tflops=200, fp32_tflops=10,
                     memory_gib=16, bandwidth_gbs=500, tdp_w=100, price_usd_per_hour=1, typical_mfu=0.3)
    assert custom.typical_mfu_fp8 == 0.0 and custom.typical_mfu_for("fp8") == 0.3


def test_a10g_row():
    """AWS's A10G: ~70 dense bf16 tensor TFLOP/s and ~35 FP32 (lower tensor, higher FP32 than the A10),
    24 GiB at 600 GB/s, no FP8."""
    a10g = get_gpu("a10g")
    assert (a10g.bf16_tflops, a10g.fp32_tflops, a10g.fp8_tflops) == (70.0, 35.0, 0.0)
    assert (a10g.memory_gib, a10g.bandwidth_gbs) == (24.0, 600.0)
    assert a10g.peak_flops("fp8") == a10g.peak_flops("bf16") == 70e12


def test_every_model_row_is_sane():
    rows = model_specs.models()
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
    for key in ("pue", "grid_kg_co2_per_kwh", "overhead_gib", "prefill_compute_efficiency",
                "decode_bandwidth_efficiency", "max_batch_sequences", "prefill_chunk_tokens",
                "decode_layer_overhead_us", "allreduce_latency_us"):
        assert key in d and math.isfinite(d[key]) and d[key] > 0
    assert "overhead_gb" not in d  # renamed: the overhead is in GiB like the GPU memory
    assert d["overhead_gib"] == 1.0
    assert d["prefill_chunk_tokens"] == 8192
    assert d["decode_layer_overhead_us"] == 20.0
    assert d["allreduce_latency_us"] == 15.0
    assert 1.0 <= d["pue"] < 2.0
    assert 0 < d["prefill_compute_efficiency"] <= 1 and 0 < d["decode_bandwidth_efficiency"] <= 1
    for row in catalog.default_rows():
        assert row["source"] and row["unit"] and row["date"]


def test_catalog_versions():
    versions = catalog.catalog_versions()
    assert set(versions) == {"gpus", "models", "defaults", "currencies", "hf_configs"}
    assert all(isinstance(v, str) and v for v in versions.values())


# ---- China-market accelerators (issue 11 item 9) ---------------------------------------------------

def test_china_market_gpus_are_in_the_catalog():
    """H800 (H100 SXM compute, NVLink 400 GB/s), A800 80GB (A100 80GB with NVLink 400 GB/s), H20 (96 GB
    HBM3, 4.0 TB/s, 148 bf16 / 296 fp8 dense), L20 (48 GB GDDR6, 864 GB/s, ~119.5 bf16 dense) and
    Huawei's Ascend 910B, which is not CUDA. Every row is dense, with a source and a date."""
    h100, a100 = get_gpu("h100-sxm"), get_gpu("a100-80gb")
    h800 = get_gpu("H800")
    for field in ("bf16_tflops", "fp8_tflops", "fp32_tflops", "memory_gib", "bandwidth_gbs", "tdp_w"):
        assert getattr(h800, field) == getattr(h100, field), field
    assert "400 GB/s" in h800.source and h800.price_usd_per_hour == 2.0 and "DeepSeek-V3" in h800.source
    a800 = get_gpu("a800-80gb")
    for field in ("bf16_tflops", "fp8_tflops", "fp32_tflops", "memory_gib", "bandwidth_gbs", "tdp_w"):
        assert getattr(a800, field) == getattr(a100, field), field
    h20 = get_gpu("h20")
    assert (h20.memory_gib, h20.bandwidth_gbs, h20.bf16_tflops, h20.fp8_tflops) == (96, 4000, 148, 296)
    l20 = get_gpu("l20")
    assert (l20.memory_gib, l20.bandwidth_gbs, l20.bf16_tflops) == (48, 864, 119.5)
    ascend = get_gpu("ascend-910b")
    assert ascend.vendor == "huawei" and ascend.platform == "CANN" and ascend.cuda is False
    assert "not CUDA" in ascend.name and ascend.fp8_tflops == 0
    assert all(get_gpu(g).cuda for g in ("h800", "a800-80gb", "h20", "l20"))
    assert get_gpu("mi300x").cuda is False and get_gpu("mi300x").platform == "ROCm"
    for gpu in (h800, a800, h20, l20, ascend):
        assert gpu.source and gpu.date
    # prices nobody publishes a list for are labelled as assumptions
    for gpu in (a800, h20, l20, ascend):
        assert "assumption" in gpu.source.lower().split("price:")[1]


def test_gpu_platform_is_checked():
    with pytest.raises(ValidationError, match="platform"):
        GPUSpec(id="x", name="X", vendor="x", bf16_tflops=100, fp8_tflops=0, fp32_tflops=10, memory_gib=16,
                bandwidth_gbs=100, tdp_w=100, price_usd_per_hour=1, typical_mfu=0.3, platform="OpenCL")
    npu = GPUSpec(id="x", name="X", vendor="x", bf16_tflops=100, fp8_tflops=0, fp32_tflops=10, memory_gib=16,
                  bandwidth_gbs=100, tdp_w=100, price_usd_per_hour=1, typical_mfu=0.3, platform="cann")
    assert npu.cuda is False and npu.platform == "CANN"
    # a row round-trips through its dict (the JSON of `gpus`), and a cuda flag must agree with the platform
    from dataclasses import asdict

    assert GPUSpec(**asdict(npu)) == npu and GPUSpec(**asdict(get_gpu("h20"))) == get_gpu("h20")
    with pytest.raises(ValidationError, match="contradicts platform"):
        GPUSpec(**{**asdict(npu), "cuda": True})


def test_ascend_fp32_is_refused_not_invented():
    """The Ascend 910B's FP32 rate is not published: an fp32 estimate is refused with one line, and the
    by-GPU tables leave it out instead of failing."""
    from engine.estimate.sensitivity import serving_by_gpu, training_by_gpu
    from engine.estimate.serving import ServeInput
    from engine.estimate.training import TrainingInput, estimate_training

    with pytest.raises(ValidationError, match="no fp32 throughput"):
        estimate_training(TrainingInput(model="gpt2", tokens=1e9, gpu="ascend-910b", precision="fp32"))
    rows = training_by_gpu(TrainingInput(model="gpt2", tokens=1e9, gpu="h100-sxm", precision="fp32"))
    assert "ascend-910b" not in set(rows["gpu"]) and "h800" in set(rows["gpu"])
    served = serving_by_gpu(ServeInput(model="gpt2", gpu="h100-sxm", dtype="fp32"))
    assert "ascend-910b" not in set(served["gpu"]) and "h20" in set(served["gpu"])


@pytest.mark.parametrize("name, gid", [
    ("NVIDIA H20", "h20"), ("NVIDIA H200", "h200"), ("NVIDIA GH200 480GB", "h200"), ("NVIDIA H800", "h800"),
    ("NVIDIA A800-SXM4-80GB", "a800-80gb"), ("NVIDIA L20", "l20"), ("NVIDIA L40S", "l40s"),
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
])
def test_new_rows_keep_the_labs_device_name_lookup_right(name, gid):
    """The lab maps torch's CUDA device name to a catalog row for MFU: the new rows must not capture
    another card's name ("h20" is inside "h200") and must be found for their own."""
    from engine.lab.device import gpu_peak_flops

    peak, found = gpu_peak_flops(name, "bf16")
    assert found == gid and peak == get_gpu(gid).bf16_tflops * 1e12
