"""How fast a training run trains. Throughput excludes the first step (warmup and compilation) and time
spent evaluating, sampling or writing checkpoints; on CUDA the clock is read after
``torch.cuda.synchronize`` so queued kernels are counted. MFU follows PaLM (Chowdhery et al. 2022, App. B):
model FLOPs per token × tokens/s ÷ peak FLOP/s, the peak being the catalog's datasheet figure for the GPU,
or on a CPU (which has no datasheet peak) the measured FLOP/s of a large fp32 matmul."""

from __future__ import annotations

import time

from engine.lab.device import cpu_matmul_peak, device_name, gpu_peak_flops, peak_rss_bytes


def peak_flops(device_type: str, device: str, dtype: str) -> tuple[float | None, str]:
    """``(peak FLOP/s, where it comes from)`` for MFU's denominator."""
    if device_type == "cuda":
        peak, gid = gpu_peak_flops(device_name(device), dtype)
        if peak is None:
            return None, f"no catalog peak for {device_name(device)}"
        return peak, f"datasheet {'fp32' if dtype == 'fp32' else 'bf16'} peak of {gid} (engine/catalog/gpus.toml)"
    return cpu_matmul_peak(), "measured fp32 matmul peak of this CPU (1024×1024 torch.mm), not a datasheet figure"


def memory_bytes(device_type: str, device: str) -> int | None:
    """Peak memory so far: CUDA's max allocated bytes, or the process's peak resident set on the CPU."""
    if device_type == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()


class Timer:
    """Wall clock for throughput; on CUDA it synchronizes first so queued kernels are counted."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()


class Throughput:
    """Tokens per second over windows of steady steps: the first step is timed on its own (``first_step_s``),
    every later step's tokens count into the open window, and :meth:`close_window` turns the window into a
    rate and adds it to the steady totals."""

    def __init__(self, device_type: str) -> None:
        self.timer = Timer(device_type)
        self.first_step_s: float | None = None
        self.steady_tokens, self.steady_time = 0, 0.0
        self.window_tokens, self.window_start = 0, None
        self._t0: float | None = None

    def begin_step(self) -> None:
        self._t0 = time.perf_counter() if self.first_step_s is None else None
        if self.window_start is None:
            self.window_start = self.timer.now()

    def end_step(self, tokens: int) -> None:
        if self._t0 is not None:  # the first step: warmup (and compilation) excluded from throughput
            if self.timer.cuda:
                import torch

                torch.cuda.synchronize()
            self.first_step_s = time.perf_counter() - self._t0
            self.window_start, self.window_tokens = self.timer.now(), 0
        else:
            self.window_tokens += tokens

    def close_window(self) -> float | None:
        """Tokens/s of the window just closed (None when it holds no step or no time); opens the next."""
        if not self.window_tokens:
            return None
        rate = None
        elapsed = self.timer.now() - self.window_start
        if elapsed > 0:
            rate = self.window_tokens / elapsed
            self.steady_tokens += self.window_tokens
            self.steady_time += elapsed
        self.window_tokens, self.window_start = 0, self.timer.now()
        return rate

    def restart_window(self) -> None:
        """Evaluation, checkpoint and sampling time is not training time."""
        if self.window_start is not None:
            self.window_start = self.timer.now()

    def summary(self, *, tokens_per_step: int, flops_per_token: float, world: int, compiled: bool,
                peak: float | None) -> dict:
        """The run's TrainResult throughput fields: steady tokens/s (the first step's where no steady step
        was timed), achieved TFLOP/s, MFU against ``peak`` per process, compile time (first step minus a
        steady one) and training time."""
        first = self.first_step_s
        tokens_per_s = self.steady_tokens / self.steady_time if self.steady_time > 0 else (
            tokens_per_step / first if first else None)
        achieved = flops_per_token * tokens_per_s if tokens_per_s else None
        compile_s = None
        if compiled and first is not None:
            steady_step = tokens_per_step / tokens_per_s if tokens_per_s else 0.0
            compile_s = max(0.0, first - steady_step)
        return {"tokens_per_s": tokens_per_s, "achieved_tflops": achieved / 1e12 if achieved else None,
                "mfu": achieved / (peak * world) if (achieved and peak) else None, "compile_s": compile_s,
                "first_step_s": first, "train_time_s": self.steady_time + (first or 0.0)}
