"""Native TensorRT 10/11, kept apart: nothing here is
imported unless a TensorRT backend is asked for, and nothing here has run on the machines this project is
built on (no GPU, no TensorRT wheel). Written against the TensorRT 10 Python API:
https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/ (Builder, OnnxParser,
IBuilderConfig, ITimingCache, IOptimizationProfile, IExecutionContext.execute_async_v3).

The engine build:
- parse the *portable* ONNX graph (standard ops only; TensorRT's parser has no com.microsoft ops) into a
  strongly typed network (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: the precision is the graph's,
  fp32 norms and softmax stay fp32 in an fp16 graph);
- one optimization profile over the dynamic axes (batch 1..max_batch, sequence 1..context, cache
  0..context);
- a timing cache per (TensorRT version, GPU), loaded before and saved after each build;
- the serialized engine cached under a key of ONNX file hash + TensorRT version + GPU name + precision +
  profile, so a stale engine is never reused when any of them changes;
- execution with ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3`` on PyTorch CUDA
  tensors (device pointers: no copy through the host).
"""

from __future__ import annotations

from engine.errors import ValidationError
from engine.infer.trt_cache import WORKSPACE_BYTES, cache_dir, engine_key

MAX_BATCH = 64
def profile_shapes(cfg, part: str, max_batch: int = MAX_BATCH) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shape per dynamic input of the portable graph."""
    ctx = cfg.context
    if part == "attention":
        return {"x": ((1, 1, cfg.d_model), (1, min(128, ctx), cfg.d_model), (max_batch, ctx, cfg.d_model))}
    shapes = {"input_ids": ((1, 1), (1, min(128, ctx)), (max_batch, ctx))}
    if not cfg.n_classes:
        for i in range(cfg.n_layers):
            for kind in ("key", "value"):
                kv = (cfg.n_kv_heads, cfg.head_dim)
                shapes[f"past_{kind}_{i}"] = ((1, kv[0], 0, kv[1]), (1, kv[0], min(128, ctx), kv[1]),
                                              (max_batch, kv[0], ctx, kv[1]))
    return shapes


def build_engine(trt, onnx_path: str, dtype: str, shapes: dict, gpu_name: str) -> bytes:
    """Parse, configure, build (or load from the cache) a serialized engine for ``onnx_path``."""
    from engine.infer.loading import file_sha256

    key = engine_key(file_sha256(onnx_path), trt.__version__, gpu_name, dtype,
                     {k: [list(s) for s in v] for k, v in shapes.items()})
    plan = cache_dir() / f"{key}.engine"
    if plan.is_file():
        return plan.read_bytes()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValidationError(f"TensorRT cannot parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if dtype == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: parity at 1e-5, not TF32's 1e-3
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    timing_file = cache_dir() / f"timing-{trt.__version__}-{gpu_name.replace(' ', '_').replace('/', '_')}.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ValidationError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    data = bytes(serialized)
    tmp = plan.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(plan)
    tmp_t = timing_file.with_suffix(".tmp")
    tmp_t.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp_t.replace(timing_file)
    return data


class TensorRTRunner:
    """engine.infer.backends.Runner on native TensorRT (portable graph, PyTorch CUDA tensors as buffers)."""

    def __init__(self, loaded, dtype: str = "fp32", part: str = "model"):
        import threading

        import tensorrt as trt
        import torch

        from engine.infer.export import ensure_onnx, past_names

        self.lock = threading.Lock()
        self.backend, self.dtype, self.device, self.cfg, self.part = "tensorrt", dtype, "cuda", loaded.config, part
        self.path = str(ensure_onnx(loaded, part, dtype, "portable"))
        self.shapes = profile_shapes(self.cfg, part)
        gpu = torch.cuda.get_device_name(0)
        data = build_engine(trt, self.path, dtype, self.shapes, gpu)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(data)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.tdtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype]
        self.pasts, self.presents = past_names(self.cfg.n_layers)
        self.lm = not self.cfg.n_classes
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]

    def _execute(self, feeds: dict) -> dict:
        """Bind device tensors, size the outputs from the context's shapes, run on our stream."""
        import torch

        for name, t in feeds.items():
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.float32 if name == "logits" else self.tdtype  # the graph casts logits to fp32
            outs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ValidationError("TensorRT execute_async_v3 failed")
        return outs

    def _empty(self, b: int):
        import torch

        return [torch.empty((b, self.cfg.n_kv_heads, 0, self.cfg.head_dim), dtype=self.tdtype, device="cuda")
                for _ in self.pasts]

    def forward(self, ids):
        import torch

        with self.lock:
            ids_t = torch.as_tensor(ids, dtype=torch.int64).cuda()
            feeds = {"input_ids": ids_t}
            if self.lm:
                feeds.update(dict(zip(self.pasts, self._empty(ids_t.shape[0]), strict=True)))
            outs = self._execute(feeds)
            self.stream.synchronize()
            return outs["logits"].float().cpu().numpy()

    def prefill(self, ids):
        return self.step(ids, None, 0)

    def step(self, ids, cache, start: int):
        import torch

        with self.lock:
            ids_t = torch.as_tensor(ids, dtype=torch.int64).cuda()
            cache = cache if cache is not None else self._empty(ids_t.shape[0])
            outs = self._execute({"input_ids": ids_t, **dict(zip(self.pasts, cache, strict=True))})
            self.stream.synchronize()
            return outs["logits"][:, -1].float().cpu().numpy(), [outs[n] for n in self.presents]

    def attention(self, x):
        import torch

        with self.lock:
            outs = self._execute({"x": torch.as_tensor(x).to("cuda", self.tdtype).contiguous()})
            self.stream.synchronize()
            return outs["y"].float().cpu().numpy()

    def sync(self) -> None:
        self.stream.synchronize()
