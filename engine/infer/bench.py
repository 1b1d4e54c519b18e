"""Backends side by side: latency percentiles, throughput and error against PyTorch fp32, on one input.

- Warm-up calls are excluded; the figures are the median (p50) and 90th percentile of the timed calls.
  On a GPU each call is timed with CUDA events (``torch.cuda.Event``) after synchronizing.
- ``rel_err``: max |output − reference| / max |reference|, the reference being the PyTorch fp32 model on
  the same input (none for a bare ONNX file, which has no PyTorch model beside it).
- ``--part attention --seq-lens``: the attention core alone at each sequence length, with achieved
  TFLOP/s (projections 2·B·T·d·(2·H + 2·H_kv)·d_h plus causal attention 2·B·H·T²·d_h, i.e. QKᵀ and PV over
  the lower triangle; Vaswani et al. 2017 eq. 1) against the roofline: the GPU's datasheet peak from the
  catalog, or on a CPU this machine's measured fp32 matmul peak (engine.lab.device.cpu_matmul_peak).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from engine.errors import ValidationError, require_number

MAX_BATCH = 4096


@dataclass(frozen=True)
class BenchInput:
    run: str | None = None
    preset: str | None = None
    onnx: str | None = None
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    batch: int = 1
    seq_len: int = 128
    dtype: str = "fp32"
    part: str = "model"
    seq_lens: tuple[int, ...] | None = None
    warmup: int = 2
    iters: int = 10
    threads: int | None = None


@dataclass(frozen=True)
class BenchResult:
    source: str
    part: str
    batch: int
    seq_len: int
    dtype: str
    results: list[dict]
    sweep: list[dict]
    roofline_tflops: float | None
    roofline_basis: str
    machine: str
    load_average: list[float] | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def attention_flops(cfg, batch: int, seq: int) -> float:
    """Forward FLOPs of one causal attention core (projections + QKᵀ and PV over the lower triangle)."""
    hd = cfg.head_dim
    proj = 2.0 * batch * seq * cfg.d_model * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) * hd
    attn = 2.0 * batch * cfg.n_heads * seq * seq * hd  # 2 matmuls × 2 FLOPs × T²/2 causal × d_h
    return proj + attn


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def time_calls(fn, warmup: int, iters: int, cuda: bool) -> list[float]:
    """Seconds per call of ``fn`` over ``iters`` timed calls after ``warmup`` untimed ones (CUDA events when
    ``cuda``: the host clock would time only the launch)."""
    for _ in range(warmup):
        fn()
    times = []
    if cuda:
        import torch

        for _ in range(iters):
            torch.cuda.synchronize()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        return times
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _rel(got, ref) -> float:
    import numpy as np

    return float(np.abs(got.astype(np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def _roofline(device: str, dtype: str) -> tuple[float | None, str]:
    from engine.lab.device import cpu_matmul_peak, device_name, gpu_peak_flops

    if device.startswith("cuda"):
        name = device_name("cuda")
        peak, gid = gpu_peak_flops(name, dtype)
        return (peak / 1e12 if peak else None), (f"datasheet peak of {gid}" if peak else f"no catalog peak for {name}")
    return cpu_matmul_peak() / 1e12, "measured fp32 matmul peak of this CPU (1024×1024 torch.mm)"


def bench(inp: BenchInput, progress=None) -> BenchResult:
    """Time each named backend on the same input; unavailable backends get a row with their reason."""
    import numpy as np

    from engine.infer.backends import make_runner
    from engine.infer.capabilities import BACKENDS, backend_info
    from engine.infer.export import PARTS
    from engine.requires import require_torch

    require_torch("bench")
    if sum(x is not None for x in (inp.run, inp.preset, inp.onnx)) != 1:
        raise ValidationError("give exactly one of --run DIR, --preset NAME or --onnx FILE")
    if inp.part not in PARTS:
        raise ValidationError(f"unknown part {inp.part!r}; choose one of: {', '.join(PARTS)}")
    batch = int(require_number("batch", inp.batch, low=1, high=MAX_BATCH, integer=True))
    warmup = int(require_number("warmup", inp.warmup, low=0, high=1000, integer=True))
    iters = int(require_number("iters", inp.iters, low=1, high=100_000, integer=True))
    names = [b.strip().lower() for b in inp.backends if b.strip()]
    if not names:
        raise ValidationError("--backends is empty; name at least one of: " + ", ".join(BACKENDS))
    for n in names:
        if n not in BACKENDS:
            raise ValidationError(f"unknown backend {n!r}; choose from: {', '.join(BACKENDS)}")
    if inp.onnx:
        return _bench_onnx(inp, names, batch, warmup, iters, progress)
    from engine.infer.loading import load

    loaded = load(inp.run, inp.preset)
    cfg = loaded.config
    if inp.part == "attention" and inp.seq_lens:
        seq = None
    else:
        seq = int(require_number("seq-len", inp.seq_len, low=1, high=cfg.context, integer=True)) if inp.seq_len \
            else cfg.context
    rng = np.random.default_rng(0)
    rows, sweep, notes = [], [], []
    roof, basis = None, ""
    import torch

    if inp.part == "attention":
        lens = list(inp.seq_lens or (seq,))
        for s in lens:
            require_number("seq-lens", s, low=1, high=cfg.context, integer=True)
    else:
        lens = [seq]
    runners = {}
    for n in names:
        info = backend_info(n)
        if not info.available:
            rows.append({"backend": n, "available": False, "reason": info.reason, "dtype": inp.dtype, "p50_ms": None,
                         "p90_ms": None, "throughput_per_s": None, "rel_err": None})
            continue
        if inp.dtype not in info.dtypes:
            rows.append({"backend": n, "available": True, "reason": f"cannot run {inp.dtype}; runs: {', '.join(info.dtypes)}",
                         "dtype": inp.dtype, "p50_ms": None, "p90_ms": None, "throughput_per_s": None, "rel_err": None})
            continue
        if progress:
            progress({"event": "prepare", "backend": n})
        runners[n] = make_runner(loaded, n, inp.dtype, inp.part, threads=inp.threads)
    for s in lens:
        if inp.part == "attention":
            x = rng.standard_normal((batch, s, cfg.d_model)).astype(np.float32)
            with torch.no_grad():
                from engine.infer.graphs import attention_reference

                ref = attention_reference(loaded.model, torch.from_numpy(x)).numpy().astype(np.float64)
            calls = {n: (lambda r=r: r.attention(x)) for n, r in runners.items()}
        else:
            ids = rng.integers(0, cfg.vocab_size, size=(batch, s), dtype=np.int64)
            with torch.no_grad():
                ref = loaded.model(torch.from_numpy(ids)).numpy().astype(np.float64)
            calls = {n: (lambda r=r: r.forward(ids)) for n, r in runners.items()}
        for n, call in calls.items():
            if progress:
                progress({"event": "time", "backend": n, "seq_len": s})
            r = runners[n]
            out = call()
            times = time_calls(call, warmup, iters, r.device.startswith("cuda"))
            p50, p90 = float(np.percentile(times, 50)), float(np.percentile(times, 90))
            row = {"backend": n, "available": True, "reason": "", "dtype": inp.dtype, "seq_len": s,
                   "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "throughput_per_s": batch * s / p50,
                   "rel_err": _rel(out, ref), "device": r.device}
            if inp.part == "attention":
                if roof is None:
                    roof, basis = _roofline(r.device, inp.dtype)
                fl = attention_flops(cfg, batch, s)
                row["tflops"] = fl / p50 / 1e12
                row["roofline_tflops"] = roof
                row["fraction_of_roofline"] = row["tflops"] / roof if roof else None
                sweep.append(row)
            if s == lens[-1] or inp.part != "attention":
                rows.append(row)
    if inp.part == "attention" and not roof:
        roof, basis = _roofline("cpu", inp.dtype)
    from engine.lab.device import device_name

    if inp.part == "model":
        notes.append("throughput_per_s: tokens per second of the full forward (batch × seq-len / p50)")
    return BenchResult(source=loaded.source, part=inp.part, batch=batch, seq_len=lens[-1], dtype=inp.dtype,
                       results=rows, sweep=sweep, roofline_tflops=roof, roofline_basis=basis,
                       machine=device_name("cpu"), load_average=_load_average(), notes=notes)


def check_onnx_file(path: str) -> None:
    """A readable, well-formed ONNX file, or a one-line ValidationError (missing, truncated, not ONNX)."""
    import onnx

    if not os.path.isfile(path):
        raise ValidationError(f"no ONNX file at {path}")
    try:
        model = onnx.load(path, load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - DecodeError, ValidationError, OSError
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValidationError(f"{path} is not a valid ONNX file (corrupt or truncated?): {first}") from None
    if not model.graph.node:
        raise ValidationError(f"{path} is not a valid ONNX file: its graph has no nodes")


def _bench_onnx(inp: BenchInput, names, batch, warmup, iters, progress) -> BenchResult:
    import numpy as np

    from engine.infer.capabilities import backend_info, ort_session

    check_onnx_file(inp.onnx)
    seq = int(require_number("seq-len", inp.seq_len, low=1, high=1e6, integer=True))
    rows = []
    for n in names:
        info = backend_info(n)
        if not n.startswith("onnxruntime"):
            rows.append({"backend": n, "available": False, "reason": "a bare ONNX file runs on onnxruntime backends only",
                         "dtype": inp.dtype, "p50_ms": None, "p90_ms": None, "throughput_per_s": None, "rel_err": None})
            continue
        if not info.available:
            rows.append({"backend": n, "available": False, "reason": info.reason, "dtype": inp.dtype, "p50_ms": None,
                         "p90_ms": None, "throughput_per_s": None, "rel_err": None})
            continue
        sess = ort_session(inp.onnx, n, inp.dtype, inp.threads)
        feed = {}
        for i in sess.get_inputs():
            dims = [d if isinstance(d, int) else None for d in i.shape]
            np_t = {"tensor(int64)": np.int64, "tensor(float16)": np.float16, "tensor(int32)": np.int32}.get(
                i.type, np.float32)
            shape = []
            for k, d in enumerate(dims):
                if d is not None:
                    shape.append(d)
                elif k == 0:
                    shape.append(batch)
                elif "past" in i.name and k == 2:
                    shape.append(0)
                else:
                    shape.append(seq)
            feed[i.name] = np.zeros(shape, dtype=np_t) if np_t in (np.int64, np.int32) else \
                np.random.default_rng(0).standard_normal(shape).astype(np_t)
        try:
            times = time_calls(lambda: sess.run(None, feed), warmup, iters, False)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
            raise ValidationError(f"onnxruntime cannot run {inp.onnx} at batch {batch} × {seq}: "
                                  f"{str(exc).splitlines()[0][:200]}") from None
        p50, p90 = float(np.percentile(times, 50)), float(np.percentile(times, 90))
        rows.append({"backend": n, "available": True, "reason": "", "dtype": inp.dtype, "seq_len": seq,
                     "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "throughput_per_s": batch * seq / p50, "rel_err": None})
    from engine.lab.device import device_name

    return BenchResult(source=str(inp.onnx), part=inp.part, batch=batch, seq_len=seq, dtype=inp.dtype, results=rows,
                       sweep=[], roofline_tflops=None, roofline_basis="", machine=device_name("cpu"),
                       load_average=_load_average(),
                       notes=["rel_err is empty: a bare ONNX file has no PyTorch model to compare with"])
