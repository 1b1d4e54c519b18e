"""Benchmark of a model folder: prefill latency and decode tokens/s per backend and precision, each beside
the serving estimator's roofline for the same architecture on this machine (engine/infer/serve_calibrate.py:
a CPU's measured fp32 matmul peak and memory bandwidth, a GPU's datasheet figures).

``predicted`` is the roofline at efficiency 1. ``calibrated`` applies the implied decode efficiency of
one reference point measured in the same call (torch fp32 at the smallest batch, or the first row
measured), the way ``calibrate --serve`` calibrates, so the other rows test whether one measured
efficiency carries across batch sizes, backends and precisions (issue 19's ±30 % aim)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

from engine.errors import ValidationError, require_number


@dataclass(frozen=True)
class HFBenchInput:
    hf_model: str | None = None
    run: str | None = None
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    dtypes: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1, 8)
    prompt_tokens: int = 512
    decode_prompt_tokens: int = 32
    decode_tokens: int = 16
    iters: int = 3
    threads: int | None = None


@dataclass(frozen=True)
class HFBenchResult:
    folder: str
    device_name: str
    peak_tflops: float
    bandwidth_gbs: float
    peak_basis: str
    bandwidth_basis: str
    params_total: int
    decode: list[dict]
    prefill: list[dict]
    skipped: list[dict] = field(default_factory=list)
    reference: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _time(fn, iters: int) -> float:
    """The median of ``iters`` timed calls after one warm-up at this shape (engine.infer.bench.time_calls)."""
    from engine.infer.bench import time_calls

    return statistics.median(time_calls(fn, 1, iters, False))


def bench_hf(inp: HFBenchInput, progress=None) -> HFBenchResult:
    import numpy as np

    from engine.infer.hf_infer import runner_for, servable
    from engine.infer.serve_calibrate import hardware, predict_serving

    iters = int(require_number("iters", inp.iters, low=1, high=1000, integer=True))
    prompt = int(require_number("prompt tokens", inp.prompt_tokens, low=1, high=1 << 20, integer=True))
    item = servable(inp.hf_model, inp.run)
    rng = np.random.default_rng(0)
    vocab = item.config.vocab_size
    decode, prefill, skipped = [], [], []
    hw = None
    for backend in inp.backends:
        for dtype in inp.dtypes:
            try:
                runner = runner_for(item, backend, dtype, inp.threads)
            except ValidationError as exc:
                skipped.append({"backend": backend, "dtype": dtype, "reason": str(exc)})
                continue
            if hw is None:
                hw = hardware(runner.device)
            ids = rng.integers(3, vocab, size=(1, prompt), dtype=np.int64)
            pre = _time(lambda r=runner, x=ids: r.prefill(x), iters)
            est = predict_serving(item.config, hw[0], prompt, inp.decode_tokens, 1, dtype=dtype)
            prefill.append({"backend": backend, "dtype": dtype, "prompt_tokens": prompt, "prefill_s": pre,
                            "predicted_prefill_s": est.prefill_seconds})
            for b in inp.batches:
                start = rng.integers(3, vocab, size=(b, inp.decode_prompt_tokens), dtype=np.int64)
                tok = rng.integers(3, vocab, size=(b, 1), dtype=np.int64)

                def run_decode(runner=runner, start=start, tok=tok):
                    _, cache = runner.prefill(start)
                    t0 = time.perf_counter()
                    for k in range(inp.decode_tokens):
                        _, cache = runner.step(tok, cache, inp.decode_prompt_tokens + k)
                    runner.sync()
                    return time.perf_counter() - t0

                run_decode()
                rate = statistics.median(b * inp.decode_tokens / run_decode() for _ in range(iters))
                est = predict_serving(item.config, hw[0], inp.decode_prompt_tokens, inp.decode_tokens, b, dtype=dtype)
                decode.append({"backend": backend, "dtype": dtype, "batch": b, "decode_tokens_per_s": rate,
                               "predicted_decode_tokens_per_s": est.decode_tokens_per_s, "decode_bound": est.decode_bound})
                if progress:
                    progress(decode[-1])
    if not decode:
        raise ValidationError("no backend could run: " + "; ".join(s["reason"] for s in skipped))
    ref = next((r for r in decode if r["backend"] == "torch" and r["dtype"] == "fp32"), decode[0])
    eff = ref["decode_tokens_per_s"] / ref["predicted_decode_tokens_per_s"]
    for r in decode:
        r["calibrated_decode_tokens_per_s"] = r["predicted_decode_tokens_per_s"] * eff
        r["measured_over_calibrated"] = r["decode_tokens_per_s"] / r["calibrated_decode_tokens_per_s"]
    return HFBenchResult(folder=str(item.folder), device_name=hw[3], peak_tflops=hw[0].fp32_tflops,
                         bandwidth_gbs=hw[0].bandwidth_gbs, peak_basis=hw[1], bandwidth_basis=hw[2],
                         params_total=int(item.config.spec.params_total), decode=decode, prefill=prefill,
                         skipped=skipped, reference={"backend": ref["backend"], "dtype": ref["dtype"],
                                                     "batch": ref["batch"], "implied_decode_efficiency": eff})
