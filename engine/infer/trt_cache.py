"""Where TensorRT keeps what it builds, for both TensorRT paths (native, and onnxruntime's TensorRT
provider): the cache folder in the workspace, the serialized-engine key, and the provider options.

Imports nothing else of the inference room, so the onnxruntime sessions (``capabilities``) and the native
backend (``tensorrt_backend``) can both use it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WORKSPACE_BYTES = 4 << 30


def cache_dir() -> Path:
    from engine import workspace

    path = workspace.home() / "tensorrt-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, dtype: str, profile: dict) -> str:
    """The cache key of a serialized engine: every input that changes what TensorRT builds."""
    doc = json.dumps({"onnx": onnx_sha256, "trt": trt_version, "gpu": gpu_name, "dtype": dtype, "profile": profile},
                     sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:32]


def ort_trt_provider_options(onnx_path: str, dtype: str) -> dict:
    """onnxruntime TensorrtExecutionProvider options: engine and timing caches in the workspace, fp16 only
    when the graph is fp16 (the graph carries the precision), explicit profile shapes left to ORT."""
    folder = cache_dir() / "ort-trt"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "device_id": 0,
        "trt_fp16_enable": dtype == "fp16",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(folder),
        "trt_max_workspace_size": WORKSPACE_BYTES,
    }
