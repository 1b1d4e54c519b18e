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

import threading


from engine.infer.capabilities import GRAPH_BY_BACKEND, check_dtype, cuda_status, ort_session, resolve_backend


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
        self.device = "cuda" if cuda_status()[0] else "cpu"
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
    if getattr(loaded, "kind", "") == "hf":  # a Hugging Face model folder: its own runners (engine/infer/hf_infer.py)
        return loaded.runner(backend, dtype, threads)
    name, _ = resolve_backend(backend)
    check_dtype(name, dtype)
    if name in ("torch", "torch-compile"):
        return TorchRunner(loaded, dtype, compile=name == "torch-compile")
    if name == "tensorrt":
        from engine.infer.tensorrt_backend import TensorRTRunner

        return TensorRTRunner(loaded, dtype, part)
    return OrtRunner(loaded, name, dtype, part, threads=threads)
