"""Inference backends behind one interface, chosen by name, each saying whether it can run here and why not.

=====================  ======================================================================  ================
name                   what runs                                                               graph
=====================  ======================================================================  ================
``torch``              the lab's PyTorch model (eager; KV cache via ``decode_step``)            —
``torch-compile``      the same under ``torch.compile`` (inductor; needs a C++ compiler on CPU) —
``onnxruntime``        onnxruntime's CPU provider                                              fused
``onnxruntime-cuda``   onnxruntime's CUDA provider, tensors kept on the GPU with IOBinding      fused
``onnxruntime-trt``    onnxruntime's TensorRT provider (CUDA for what TensorRT does not take)    portable
``tensorrt``           native TensorRT 10/11 (``engine/infer/tensorrt_backend.py``)             portable
=====================  ======================================================================  ================

No silent fallback: asking for a backend that is not available, or for a precision it cannot run, is a
ValidationError naming why (and which precisions it can run). ``auto`` takes the first available backend
in :data:`SPEED_ORDER` (fastest first, as measured in docs/BENCHMARKS.md) and the result says which.

A runner (:class:`Runner`) serves one model in one precision: ``forward(ids)`` (full sequence, no cache),
``prefill(ids)`` / ``step(ids, cache)`` (KV cache; the cache is the backend's own object: torch tensors,
numpy arrays, or OrtValues on the GPU) and, for the attention core, ``attention(x)``.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
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
def _cuda() -> tuple[bool, str]:
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

    gpu, _ = _cuda()
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
        gpu, gname = _cuda()
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
    gpu, gname = _cuda()
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
        from engine.infer.tensorrt_backend import ort_trt_provider_options

        providers = [("TensorrtExecutionProvider", ort_trt_provider_options(path, dtype)),
                     ("CUDAExecutionProvider", {"device_id": 0})]
    else:
        raise ValueError(backend)
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValidationError(f"onnxruntime cannot load {path}: {msg}") from None


# ---- runners -------------------------------------------------------------------------------------------
class Runner:
    """One model in one precision on one backend. Thread-safe for concurrent sessions: each call holds
    the runner's lock (onnxruntime sessions and torch modules are shared; the caches are per call)."""

    backend: str
    dtype: str
    device: str

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def forward(self, ids):  # ids: int64 numpy [B, T] → float32 numpy logits [B, T, V] or [B, C]
        raise NotImplementedError

    def prefill(self, ids):  # → (float32 numpy logits of the last position [B, V], cache)
        raise NotImplementedError

    def step(self, ids, cache, start: int):  # ids [B, T'] at positions start.. → (last logits, new cache)
        raise NotImplementedError

    def attention(self, x):  # float32 numpy [B, T, d_model] → [B, T, d_model]
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued device work (CUDA) so timings are honest."""


class TorchRunner(Runner):
    def __init__(self, loaded, dtype: str = "fp32", compile: bool = False):
        super().__init__()
        import copy

        import torch

        self.backend = "torch-compile" if compile else "torch"
        self.dtype = dtype
        self.device = "cuda" if _cuda()[0] else "cpu"
        tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        model = loaded.model
        if dtype != "fp32" or self.device != "cpu":
            model = copy.deepcopy(model).to(device=self.device, dtype=tdtype)
        self.model = model.eval()
        self.cfg = loaded.config
        self._fwd = torch.compile(model, dynamic=True) if compile else model
        self._step = torch.compile(model.decode_step, dynamic=True) if compile else model.decode_step
        from engine.infer.graphs import attention_reference

        self._attn = (torch.compile(lambda x: attention_reference(model, x), dynamic=True) if compile
                      else (lambda x: attention_reference(model, x)))
        self.tdtype = tdtype

    def _ids(self, ids):
        import torch

        return torch.as_tensor(ids, dtype=torch.long, device=self.device)

    def forward(self, ids):
        import torch

        with self.lock, torch.inference_mode():
            return self._fwd(self._ids(ids)).float().cpu().numpy()

    def prefill(self, ids):
        return self.step(ids, None, 0)

    def step(self, ids, cache, start: int):
        import torch

        with self.lock, torch.inference_mode():
            logits, cache = self._step(self._ids(ids), cache, start)
            return logits.float().cpu().numpy(), cache

    def attention(self, x):
        import torch

        with self.lock, torch.inference_mode():
            t = torch.as_tensor(x, device=self.device).to(self.tdtype)
            return self._attn(t).float().cpu().numpy()

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


class OrtRunner(Runner):
    """onnxruntime with the fused (CPU/CUDA) or portable (TensorRT provider) graph. On the GPU the KV cache
    stays on the device as OrtValues bound with IOBinding; only token ids go up and last logits come down."""

    def __init__(self, loaded, backend: str = "onnxruntime", dtype: str = "fp32", part: str = "model",
                 path: str | None = None, threads: int | None = None):
        super().__init__()
        import numpy as np

        from engine.infer.export import ensure_onnx, past_names

        self.backend, self.dtype, self.cfg = backend, dtype, loaded.config
        self.device = "cpu" if backend == "onnxruntime" else "cuda"
        graph = GRAPH_BY_BACKEND[backend]
        self.path = str(path or ensure_onnx(loaded, part, dtype, graph))
        self.sess = ort_session(self.path, backend, dtype, threads)
        if dtype == "bf16":
            import ml_dtypes

            self.np_dtype = ml_dtypes.bfloat16
        else:
            self.np_dtype = np.float16 if dtype == "fp16" else np.float32
        self.lm = not self.cfg.n_classes
        self.pasts, self.presents = past_names(self.cfg.n_layers)
        self.gpu = self.device == "cuda"

    def _empty(self, b: int):
        import numpy as np

        shape = (b, self.cfg.n_kv_heads, 0, self.cfg.head_dim)
        if self.gpu:
            import onnxruntime as ort

            return [ort.OrtValue.ortvalue_from_shape_and_type(list(shape), self.np_dtype, "cuda", 0) for _ in self.pasts]
        return [np.zeros(shape, dtype=self.np_dtype) for _ in self.pasts]

    def forward(self, ids):
        import numpy as np

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self.lock:
            if not self.lm:
                return self.sess.run(["logits"], {"input_ids": ids})[0].astype(np.float32)
            if self.gpu:
                return self._run_bound(ids, self._empty(ids.shape[0]), all_logits=True)[0]
            feed = {"input_ids": ids, **dict(zip(self.pasts, self._empty(ids.shape[0]), strict=True))}
            return self.sess.run(["logits"], feed)[0].astype(np.float32)

    def prefill(self, ids):
        return self.step(ids, None, 0)

    def step(self, ids, cache, start: int):
        import numpy as np

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if cache is None:
            cache = self._empty(ids.shape[0])
        with self.lock:
            if self.gpu:
                logits, present = self._run_bound(ids, cache, all_logits=False)
                return logits, present
            outs = self.sess.run(None, {"input_ids": ids, **dict(zip(self.pasts, cache, strict=True))})
            return outs[0][:, -1].astype(np.float32), outs[1:]

    def _run_bound(self, ids, cache, all_logits: bool):
        """IOBinding: ids from the host, the cache as device OrtValues, presents left on the device."""
        import numpy as np

        binding = self.sess.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        for name, value in zip(self.pasts, cache, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu" if all_logits else "cuda", 0)
        for name in self.presents:
            binding.bind_output(name, "cuda", 0)
        self.sess.run_with_iobinding(binding)
        outs = binding.get_outputs()
        logits = outs[0].numpy()
        logits = logits if all_logits else logits[:, -1]
        return logits.astype(np.float32), list(outs[1:])

    def attention(self, x):
        import numpy as np

        with self.lock:
            return self.sess.run(None, {"x": np.ascontiguousarray(x, dtype=self.np_dtype)})[0].astype(np.float32)


def make_runner(loaded, backend: str = "auto", dtype: str = "fp32", part: str = "model",
                threads: int | None = None) -> Runner:
    """A runner for ``loaded`` on ``backend`` (a name, or auto) in ``dtype``; refuses what cannot run here."""
    name, _ = resolve_backend(backend)
    check_dtype(name, dtype)
    if name in ("torch", "torch-compile"):
        return TorchRunner(loaded, dtype, compile=name == "torch-compile")
    if name == "tensorrt":
        from engine.infer.tensorrt_backend import TensorRTRunner

        return TensorRTRunner(loaded, dtype, part)
    return OrtRunner(loaded, name, dtype, part, threads=threads)
