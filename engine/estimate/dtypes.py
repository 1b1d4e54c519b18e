"""Number formats: bytes per value for weights and caches, and the precision the math runs in."""

from __future__ import annotations

from engine.errors import require_choice

WEIGHT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8")
TRAIN_DTYPES = ("fp32", "bf16", "fp16", "fp8")
BYTES_PER_VALUE = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# Weight-only int4 (GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024) stores one fp16 scale per group
# of 128 weights by default: 2/128 extra bytes per weight.
INT4_GROUP_SIZE = 128
QUANTIZED = ("fp8", "int8", "int4")


def weight_dtype(value: object) -> str:
    return require_choice("dtype", value, WEIGHT_DTYPES)


def kv_dtype(value: object) -> str:
    return require_choice("kv-dtype", value, KV_DTYPES)


def bytes_per_weight(dtype: str) -> float:
    """Bytes per stored weight, quantization scales included (int4: 0.5 + 2/128)."""
    if dtype == "int4":
        return BYTES_PER_VALUE["int4"] + 2.0 / INT4_GROUP_SIZE
    return BYTES_PER_VALUE[dtype]


def compute_precision(dtype: str) -> str:
    """The tensor-core precision the matrix products run in: weight-only int8/int4 dequantize to bf16."""
    return dtype if dtype in ("fp32", "fp8") else "bf16"
