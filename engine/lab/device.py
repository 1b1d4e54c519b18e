"""Devices for the model lab: which one to use and in what precision, its name, its peak FLOP/s (a
GPU's datasheet figure from engine/catalog/gpus.toml, or a measured matmul peak on a CPU), peak
memory readings, and the out-of-memory answer with a smaller batch."""

from __future__ import annotations

import sys
import time
from functools import lru_cache

from engine.errors import ValidationError, require_choice

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str) -> str:
    import torch

    device = require_choice("device", device, DEVICES)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device 'cuda' requested but no CUDA GPU is visible to PyTorch; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    import torch

    dtype = require_choice("dtype", dtype, DTYPES)
    if dtype == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if dtype == "fp16" and device != "cuda":
        raise ValidationError("dtype fp16 needs CUDA (fp16 with a gradient scaler); on the CPU use fp32 or bf16")
    if dtype == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValidationError("this GPU has no bf16 support; use --dtype fp16 (with a gradient scaler) or fp32")
    return dtype


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.cuda.current_device())
    model = ""
    try:  # Linux names the CPU model here; platform.processor() is often just the architecture
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    name = model or platform.processor() or platform.machine() or "CPU"
    return f"{name} ({torch.get_num_threads()} threads)"


def gpu_peak_flops(name: str, dtype: str) -> tuple[float | None, str]:
    """Datasheet dense peak for a CUDA device name from the GPU catalog (bf16/fp16 tensor peak; fp32
    training uses the fp32 figure, which understates TF32 tensor cores): (FLOP/s, catalog id)."""
    from engine.catalog import gpus

    low = name.lower()
    compact = low.replace(" ", "")
    best = None
    for gid, gpu in gpus().items():
        family = gid.split("-")[0]  # "h100", "l40s", "rtx", "mi300x"
        if family in compact:
            score = len(family) + (5 if any(t in low for t in gid.split("-")[1:]) else 0)
            if best is None or score > best[0]:
                best = (score, gid, gpu)
    if best is None:
        return None, ""
    _, gid, gpu = best
    if "pcie" in low and gid == "h100-sxm" and "h100-pcie" in gpus():
        gid, gpu = "h100-pcie", gpus()["h100-pcie"]
    return gpu.peak_flops("fp32" if dtype == "fp32" else "bf16"), gid


@lru_cache(maxsize=1)
def cpu_matmul_peak(n: int = 1024, seconds: float = 0.3) -> float:
    """Measured fp32 FLOP/s of an n×n matmul on this CPU (cached per process): the denominator of the
    CPU "MFU vs measured matmul peak", since CPUs publish no dense-matmul peak we could look up."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and reps >= 3:
            return 2.0 * n**3 * reps / elapsed


def peak_rss_bytes() -> int | None:
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)
    except Exception:  # noqa: BLE001 - no resource module (Windows)
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001
            return None


def is_oom(exc: BaseException) -> bool:
    import torch

    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower()
        or isinstance(exc, MemoryError))


def oom_message(batch: int, grad_accum: int, context: int, device: str, world: int) -> str:
    import torch

    micro = batch // max(1, grad_accum * world)
    where = "this machine's memory"
    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        where = f"{total / 2**30:.0f} GiB of {device_name(device)}"
    smaller = max(1, batch // 2)
    hint = (f"try --batch-size {smaller}" if micro > 1 else
            f"even one sequence of {context} tokens does not fit; use a smaller preset or context")
    if micro > 1:
        hint += f" (or keep the batch with --grad-accum {grad_accum * 2})"
    return f"out of memory: batch {batch} ({micro} sequences × {context} tokens per micro-batch) does not fit in {where}; {hint}"
