"""What inference backends this machine can run, and why not: detection (packages, CUDA, providers,
TensorRT libraries), the precisions each runs, the ``auto`` choice, and onnxruntime sessions.

Apart from the runners (``engine/infer/backends.py``) so that exporting (which checks its graph on an
onnxruntime session) and running (which exports on demand) do not import each other.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache

from engine.errors import ValidationError

BACKENDS = ("torch", "torch-compile", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt")
SPEED_ORDER = ("tensorrt", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime", "torch")
DTYPES_BY_BACKEND = {
    "torch": ("fp32", "bf16"),            # on a CPU; fp16 too on CUDA
    "torch-compile": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "fp16", "int8"),
    "onnxruntime-cuda": ("fp32", "fp16", "bf16"),
    "onnxruntime-trt": ("fp32", "fp16"),
    "tensorrt": ("fp32", "fp16"),
}
GRAPH_BY_BACKEND = {"onnxruntime": "fused", "onnxruntime-cuda": "fused", "onnxruntime-trt": "portable",
                    "tensorrt": "portable"}


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str
    device: str
    version: str | None
    dtypes: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """(a CUDA GPU is visible, its name or why not)."""
    if _has("torch"):
        import torch

        if torch.cuda.is_available():
            return True, torch.cuda.get_device_name(0)
        return False, "no CUDA GPU visible to PyTorch"
    return False, "PyTorch is not installed, so no CUDA device could be checked"


def _ort_providers() -> tuple[str | None, list[str]]:
    if not _has("onnxruntime"):
        return None, []
    import onnxruntime as ort

    return ort.__version__, list(ort.get_available_providers())


def _torch_info(name: str) -> BackendInfo:
    if not _has("torch"):
        return BackendInfo(name, False, "package missing: torch (run bash scripts/setup.sh)", "cpu", None,
                           DTYPES_BY_BACKEND[name])
    import torch

    gpu, _ = cuda_status()
    device = "cuda" if gpu else "cpu"
    dtypes = ("fp32", "fp16", "bf16") if gpu else DTYPES_BY_BACKEND[name]
    if name == "torch-compile" and not gpu and not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        return BackendInfo(name, False, "library missing: torch.compile on a CPU needs a C++ compiler (g++)", device,
                           torch.__version__, dtypes)
    return BackendInfo(name, True, "", device, torch.__version__, dtypes)


def _tensorrt_version() -> tuple[str | None, str]:
    if not _has("tensorrt"):
        return None, "package missing: tensorrt (pip install tensorrt, 10.x or 11.x, needs a CUDA GPU)"
    try:
        import tensorrt as trt

        return trt.__version__, ""
    except Exception as exc:  # noqa: BLE001 - libnvinfer.so missing or mismatched
        return None, f"library missing: import tensorrt failed ({str(exc).splitlines()[0][:150]})"


def backend_info(name: str) -> BackendInfo:
    """Whether ``name`` can run on this machine, and if not, why (no GPU, package missing, library missing)."""
    if name not in BACKENDS:
        raise ValidationError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)} (or auto)")
    if name in ("torch", "torch-compile"):
        return _torch_info(name)
    dtypes = DTYPES_BY_BACKEND[name]
    if name == "tensorrt":
        version, why = _tensorrt_version()
        if version is None:
            return BackendInfo(name, False, why, "cuda", None, dtypes)
        gpu, gname = cuda_status()
        if not gpu:
            return BackendInfo(name, False, f"no GPU: {gname}", "cuda", version, dtypes)
        return BackendInfo(name, True, "", f"cuda ({gname})", version, dtypes)
    version, providers = _ort_providers()
    if version is None:
        return BackendInfo(name, False, "package missing: onnxruntime (pip install onnxruntime, or onnxruntime-gpu)",
                           "cpu" if name == "onnxruntime" else "cuda", None, dtypes)
    if name == "onnxruntime":
        return BackendInfo(name, "CPUExecutionProvider" in providers, "" if "CPUExecutionProvider" in providers
                           else "this onnxruntime build has no CPU provider", "cpu", version, dtypes)
    needed = "CUDAExecutionProvider" if name == "onnxruntime-cuda" else "TensorrtExecutionProvider"
    if needed not in providers:
        return BackendInfo(name, False, f"package missing: this onnxruntime {version} has no {needed} (providers: "
                           f"{', '.join(providers)}); install onnxruntime-gpu instead of onnxruntime", "cuda", version,
                           dtypes)
    if name == "onnxruntime-trt":
        trt_version, why = _tensorrt_version()
        if trt_version is None and not _trt_libs():
            return BackendInfo(name, False, f"library missing: TensorRT's libnvinfer for the TensorRT provider ({why})",
                               "cuda", version, dtypes)
    gpu, gname = cuda_status()
    if not gpu:
        return BackendInfo(name, False, f"no GPU: {gname}", "cuda", version, dtypes)
    return BackendInfo(name, True, "", f"cuda ({gname})", version, dtypes)


def _trt_libs() -> bool:
    import ctypes.util

    return any(ctypes.util.find_library(n) for n in ("nvinfer", "nvinfer_10", "nvinfer_11"))


def list_backends() -> list[BackendInfo]:
    return [backend_info(n) for n in BACKENDS]


def resolve_backend(name: str | None) -> tuple[str, str]:
    """(backend name, how it was chosen). ``auto``/None picks the fastest available; an unavailable
    backend is refused with its reason (never replaced by another)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        for cand in SPEED_ORDER:
            info = backend_info(cand)
            if info.available:
                return cand, f"auto: {cand} is the fastest backend available here (order: {', '.join(SPEED_ORDER)})"
        raise ValidationError("no inference backend is available: install torch or onnxruntime")
    info = backend_info(name)
    if not info.available:
        raise ValidationError(f"backend {name!r} is not available here: {info.reason}")
    return name, f"{name} (asked for)"


def check_dtype(backend: str, dtype: str) -> str:
    info = backend_info(backend)
    if dtype not in info.dtypes:
        raise ValidationError(f"backend {backend!r} cannot run {dtype!r} here; it runs: {', '.join(info.dtypes)}")
    return dtype


# ---- onnxruntime sessions ------------------------------------------------------------------------------
def ort_cpu_session(path: str, dtype: str = "fp32", threads: int | None = None):
    """An onnxruntime CPU session. fp16 graphs load at ORT_ENABLE_EXTENDED: onnxruntime 1.32 was seen
    crashing while optimising an fp16 model at the default level (ORT_ENABLE_ALL) on the CPU."""
    return ort_session(path, "onnxruntime", dtype, threads)


def ort_session(path: str, backend: str = "onnxruntime", dtype: str = "fp32", threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if dtype == "fp16" and backend == "onnxruntime":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
    if backend == "onnxruntime":
        providers = ["CPUExecutionProvider"]
    elif backend == "onnxruntime-cuda":
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    elif backend == "onnxruntime-trt":
        from engine.infer.trt_cache import ort_trt_provider_options

        providers = [("TensorrtExecutionProvider", ort_trt_provider_options(path, dtype)),
                     ("CUDAExecutionProvider", {"device_id": 0})]
    else:
        raise ValueError(backend)
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValidationError(f"onnxruntime cannot load {path}: {msg}") from None
