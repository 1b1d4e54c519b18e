"""Reference data: the GPU catalog, the model presets and the estimator's default assumptions.

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
from engine.estimate.architecture import ModelSpec

_HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One accelerator: dense tensor peaks (TFLOP/s), memory (GiB, as vendors size HBM/GDDR), bandwidth
    (decimal GB/s), board power (W), on-demand price (USD per GPU-hour) and typical training MFU."""

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
    source: str = ""
    date: str = ""

    def __post_init__(self) -> None:
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
def models() -> dict[str, ModelSpec]:
    """The model presets, keyed by id, in file order; parameter counts derived from architecture."""
    return {row["id"]: ModelSpec(**row) for row in _load("models.toml")["model"]}


@cache
def defaults() -> dict[str, float]:
    """Default assumptions (PUE, grid intensity, overheads, serving efficiencies) by key."""
    return {row["key"]: float(row["value"]) for row in _load("defaults.toml")["default"]}


@cache
def default_rows() -> tuple[dict, ...]:
    """Default assumptions with their units, sources and dates, for display."""
    return tuple(_load("defaults.toml")["default"])


def catalog_versions() -> dict[str, str]:
    return {n: _load(f"{n}.toml")["version"] for n in ("gpus", "models", "defaults")}


def get_gpu(gpu_id: object) -> GPUSpec:
    return gpus()[require_choice("gpu", gpu_id, gpus())]


def get_model(model_id: object) -> ModelSpec:
    return models()[require_choice("model", model_id, models())]


def resolve_gpu(gpu: GPUSpec | str) -> GPUSpec:
    if isinstance(gpu, GPUSpec):
        return gpu
    return get_gpu(gpu)


def resolve_model(model: ModelSpec | str) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if model is None:
        raise ValidationError("a model is required")
    return get_model(model)


MODEL_FILE_MAX_BYTES = 1_000_000
_MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec) if f.init)
_REQUIRED_MODEL_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size")


def load_model_file(path: str | Path) -> ModelSpec:
    """A custom architecture from a TOML or JSON file: the fields of models.toml, either at the top
    level or in one [model] table. Every problem is a one-line ValidationError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MODEL_FILE_MAX_BYTES:
        raise ValidationError(f"model file {path.name!r} is {len(raw):,} bytes; the limit is {MODEL_FILE_MAX_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"model file {path.name!r} is not UTF-8 text") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ValidationError(f"model file {path.name!r} is not valid {kind}: {exc}") from None
    return model_from_mapping(data, where=f"model file {path.name!r}")


def model_from_mapping(data: object, where: str = "model") -> ModelSpec:
    """Build and validate a ModelSpec from a plain mapping (a parsed file or a form)."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if isinstance(data, dict) and isinstance(data.get("model"), list) and len(data["model"]) == 1:
        data = data["model"][0]
    if not isinstance(data, dict):
        raise ValidationError(f"{where} must hold a table of architecture fields")
    unknown = sorted(set(data) - set(_MODEL_FIELDS) - {"version", "schema"})
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_MODEL_FIELDS)}")
    missing = [k for k in _REQUIRED_MODEL_FIELDS if k not in data]
    if missing:
        raise ValidationError(f"{where}: missing required field(s) {', '.join(missing)}")
    spec_fields = {k: v for k, v in data.items() if k in _MODEL_FIELDS}
    spec_fields.setdefault("id", "custom")
    for key in ("tied_embeddings", "bias", "dropout", "router_bias"):
        if key in spec_fields and not isinstance(spec_fields[key], bool):
            raise ValidationError(f"{where}: {key} must be true or false, got {spec_fields[key]!r}")
    for key in ("id", "name", "ffn", "position", "norm", "published_gpu", "source", "date"):
        if key in spec_fields and not isinstance(spec_fields[key], str):
            raise ValidationError(f"{where}: {key} must be text, got {spec_fields[key]!r}")
    try:
        return ModelSpec(**spec_fields)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
