"""Reference data: the GPU catalog, the model presets and the estimator's default assumptions.

The lowest layer: it imports nothing from the estimator (``engine.estimate.models`` builds specs from
``model_rows()``).

Each lives in a versioned TOML file beside this module with a source and date per row. Loading is
cached; lookups by id raise :class:`~engine.errors.ValidationError` naming the allowed ids.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from engine.errors import ValidationError, require_choice, require_number

_HERE = Path(__file__).parent
# The software stack an accelerator runs. Only CUDA parts get CUDA paths (the lab's device choice,
# CUDA-only inference engines); ROCm runs PyTorch's HIP build, CANN Huawei's torch_npu / MindSpore.
PLATFORMS = ("CUDA", "ROCm", "CANN")


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One accelerator: dense tensor peaks (TFLOP/s), memory (GiB, as vendors size HBM/GDDR), bandwidth
    (decimal GB/s), board power (W), on-demand price (USD per GPU-hour), typical training MFU, and the
    software ``platform`` it runs (CUDA, ROCm, CANN); ``cuda`` says whether CUDA paths apply to it."""

    id: str
    name: str
    vendor: str
    bf16_tflops: float
    fp8_tflops: float
    fp32_tflops: float
    memory_gib: float
    bandwidth_gbs: float
    tdp_w: float
    price_usd_per_hour: float
    typical_mfu: float
    typical_mfu_fp8: float = 0.0
    platform: str = "CUDA"
    source: str = ""
    date: str = ""
    cuda: bool | None = None  # derived from platform (offer CUDA paths or not); given, it must agree

    def __post_init__(self) -> None:
        object.__setattr__(self, "platform", require_choice("gpu platform", self.platform, PLATFORMS))
        derived = self.platform == "CUDA"
        if self.cuda is not None and self.cuda is not derived:
            raise ValidationError(f"gpu cuda={self.cuda!r} contradicts platform {self.platform!r}")
        object.__setattr__(self, "cuda", derived)
        # (field, low, low allowed, high): a custom GPU is checked like any other input.
        for name, low, low_inclusive, high in (
            ("bf16_tflops", 0, False, 1e6), ("fp8_tflops", 0, True, 1e6), ("fp32_tflops", 0, True, 1e6),
            ("memory_gib", 0, False, 1e6), ("bandwidth_gbs", 0, False, 1e7), ("tdp_w", 0, True, 1e5),
            ("price_usd_per_hour", 0, True, 1e4), ("typical_mfu", 0, False, 1.0), ("typical_mfu_fp8", 0, True, 1.0),
        ):
            value = require_number(f"gpu {name}", getattr(self, name), low=low, low_inclusive=low_inclusive, high=high)
            object.__setattr__(self, name, value)

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    def typical_mfu_for(self, precision: str) -> float:
        """Default MFU against the peak of ``precision``: FP8 training has its own, lower figure."""
        if precision == "fp8" and self.fp8_tflops > 0 and self.typical_mfu_fp8 > 0:
            return self.typical_mfu_fp8
        return self.typical_mfu

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s for a compute precision (bf16/fp16, fp8, fp32). Precisions without
        native units fall back to bf16 (e.g. fp8 or int weights dequantized to bf16 on an A100)."""
        if precision == "fp32":
            return self.fp32_tflops * 1e12
        if precision == "fp8" and self.fp8_tflops > 0:
            return self.fp8_tflops * 1e12
        return self.bf16_tflops * 1e12


def _load(name: str) -> dict:
    with open(_HERE / name, "rb") as fh:
        return tomllib.load(fh)


@cache
def gpus() -> dict[str, GPUSpec]:
    """The GPU catalog, keyed by id, in file order."""
    names = {f.name for f in fields(GPUSpec)}
    return {row["id"]: GPUSpec(**{k: v for k, v in row.items() if k in names}) for row in _load("gpus.toml")["gpu"]}


@cache
def model_rows() -> tuple[dict, ...]:
    """The model presets as plain rows (architecture fields, source, date), in file order. The
    estimator turns them into specs (``engine.estimate.models``); this layer knows no formulas."""
    return tuple(_load("models.toml")["model"])


@cache
def hf_config_file() -> dict:
    """Hugging Face config.json files of open models (hf_configs.json: version, and rows with id,
    name, source URL, date, published_params, train_tokens and the config itself). JSON, not TOML,
    because config.json's nulls carry meaning; ``engine.estimate.models`` builds their specs through
    the importer (``engine.estimate.hf_config``)."""
    with open(_HERE / "hf_configs.json", encoding="utf-8") as fh:
        return json.load(fh)


def hf_config_rows() -> tuple[dict, ...]:
    return tuple(hf_config_file()["model"])


@cache
def defaults() -> dict[str, float]:
    """Default assumptions (PUE, grid intensity, overheads, serving efficiencies) by key."""
    return {row["key"]: float(row["value"]) for row in _load("defaults.toml")["default"]}


@cache
def default_rows() -> tuple[dict, ...]:
    """Default assumptions with their units, sources and dates, for display."""
    return tuple(_load("defaults.toml")["default"])


@cache
def lab_preset_file() -> dict:
    """The model lab's presets file as parsed (version and [[preset]] rows); ``engine.lab.presets`` builds
    its presets from it, and pages that must not import torch read a row's measured run from it."""
    return _load("lab_presets.toml")


@cache
def currency_rows() -> tuple[dict, ...]:
    """The currencies money can be shown in: code, symbol, name, per_usd (units per US dollar),
    source and date, in file order (``engine.money`` builds on these)."""
    return tuple(_load("currencies.toml")["currency"])


@cache
def api_file() -> dict:
    """The API offers file as parsed: version, the date its prices were taken, and the [[offer]] rows
    (provider, model, currency, prices per million tokens, context, open_model, source, date);
    ``engine.estimate.apis`` builds the offers from it."""
    return _load("apis.toml")


@cache
def uncertainty_rows() -> tuple[dict, ...]:
    """Ranges of the readiness assumptions (factors on a scenario's point values) with sources."""
    return tuple(_load("uncertainty.toml")["range"])


@cache
def stack_rows() -> tuple[dict, ...]:
    """The fine-tuning software stacks (stacks.toml): memory conventions, speed defaults, source, date."""
    return tuple(_load("stacks.toml")["stack"])


def catalog_versions() -> dict[str, str]:
    out = {n: _load(f"{n}.toml")["version"] for n in ("gpus", "models", "defaults", "currencies")}
    out["hf_configs"] = hf_config_file()["version"]
    return out


def get_gpu(gpu_id: object) -> GPUSpec:
    return gpus()[require_choice("gpu", gpu_id, gpus())]


def resolve_gpu(gpu: GPUSpec | str) -> GPUSpec:
    if isinstance(gpu, GPUSpec):
        return gpu
    return get_gpu(gpu)
