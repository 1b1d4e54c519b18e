"""Serving calibration: this machine's measured prefill latency and decode tokens/s at several concurrency
levels, each beside the serving estimator's prediction for the same model and hardware.

The estimator (engine.estimate.serving, a roofline after Williams et al. 2009 and LLM-Viewer, Yuan et al.
2024) needs the hardware's compute peak and memory bandwidth. On a GPU those are the catalog's datasheet
figures. On a CPU there is no datasheet to look up, so both are measured here: the fp32 matmul peak
(engine.lab.device.cpu_matmul_peak, the same figure the training calibration's CPU MFU uses) and the
memory bandwidth (a STREAM-style copy of an array far larger than the caches, McCalpin 1995: bytes read
plus bytes written per second). Predictions are made at efficiency 1.0 against those measured peaks, so

    implied_prefill_efficiency = predicted_prefill_s / measured_prefill_s
    implied_decode_efficiency  = measured_decode_tokens_per_s / predicted_decode_tokens_per_s

are the factors the Serving page's "prefill compute efficiency" and "decode bandwidth efficiency" stand
for. ``calibrated`` re-runs the estimator with the median implied efficiencies and reports how far each
level's measured decode rate then is from the prediction (the ±30 % check of issue 8).

Each level: c prompts of P tokens prefilled together (measured: that batched prefill; predicted: c × the
estimator's single-prompt prefill, which is compute-bound), then N decode steps of c sequences with the KV
cache (measured: c·N / time; predicted: the estimator's decode_tokens_per_s at concurrency c).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field

from engine.errors import ValidationError, require_number

DEFAULT_LEVELS = (1, 2, 4, 8)
KIND = "serve-calibrate"


@dataclass(frozen=True)
class ServeCalibrateInput:
    run: str | None = None
    preset: str | None = None
    backend: str = "auto"
    hf_model: str | None = None        # a Hugging Face model folder (engine/infer/hf_infer.py)
    levels: tuple[int, ...] = DEFAULT_LEVELS
    prompt_tokens: int | None = None   # default: half the context
    output_tokens: int = 32
    repeats: int = 3


@dataclass(frozen=True)
class ServeCalibrateResult:
    source: str
    backend: str
    backend_choice: str
    device: str
    device_name: str
    prompt_tokens: int
    output_tokens: int
    levels: list[dict]
    peak_tflops: float
    peak_basis: str
    bandwidth_gbs: float
    bandwidth_basis: str
    implied_prefill_efficiency: float
    implied_decode_efficiency: float
    calibrated_decode_ratio_max_error: float
    load_average: list[float] | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def measure_bandwidth(n_bytes: int = 256 << 20, seconds: float = 0.3) -> float:
    """Memory bandwidth in bytes/s: repeated copies of an n_bytes array (read + write counted)."""
    import numpy as np

    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    reps, start = 0, time.perf_counter()
    best = 0.0
    while True:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        dt = time.perf_counter() - t0
        best = max(best, 2 * src.nbytes / dt)
        reps += 1
        if time.perf_counter() - start >= seconds and reps >= 3:
            return best


def hardware(device: str):
    """(GPUSpec for the estimator, peak basis, bandwidth basis, device name)."""
    from engine.catalog import GPUSpec
    from engine.lab.device import cpu_matmul_peak, device_name, gpu_peak_flops

    if device.startswith("cuda"):
        from engine.catalog import gpus

        name = device_name("cuda")
        _, gid = gpu_peak_flops(name, "bf16")
        if not gid:
            raise ValidationError(f"no catalog entry for {name}: the estimator has no peak or bandwidth to predict with")
        return gpus()[gid], f"datasheet peak of {gid}", f"datasheet bandwidth of {gid}", name
    peak = cpu_matmul_peak()
    bw = measure_bandwidth()
    try:
        import psutil

        mem_gib = psutil.virtual_memory().total / 2**30
    except Exception:  # noqa: BLE001
        mem_gib = 8.0
    spec = GPUSpec(id="this-cpu", name=device_name("cpu"), vendor="cpu", bf16_tflops=peak / 1e12, fp8_tflops=0.0,
                   fp32_tflops=peak / 1e12, memory_gib=mem_gib, bandwidth_gbs=bw / 1e9, tdp_w=0.0,
                   price_usd_per_hour=0.0, typical_mfu=0.5, source="measured on this machine", date="")
    return (spec, "measured fp32 matmul peak of this CPU (1024×1024 torch.mm)",
            "measured memory bandwidth of this CPU (256 MiB array copy, read + write)", spec.name)


def predict_serving(cfg, hw, prompt: int, output: int, conc: int, eff_c: float = 1.0, eff_b: float = 1.0,
                    dtype: str = "fp32"):
    """The serving estimator for ``cfg``'s ModelSpec on ``hw`` (weights in ``dtype``; KV cache fp32)."""
    from engine.estimate.serving import ServeInput, estimate_serving

    return estimate_serving(ServeInput(model=cfg.model_spec(), gpu=hw, gpus=1, dtype=dtype, kv_dtype="fp32",
                                       prompt_tokens=prompt, output_tokens=output, concurrency=conc,
                                       prefill_efficiency=eff_c, decode_efficiency=eff_b, max_batch=max(conc, 1),
                                       overhead_gib=0.0,
                                       # what is timed here is the forward passes alone: no request handling
                                       # or per-sequence host work of a serving engine (issue 18's terms)
                                       request_overhead_ms=0.0, sequence_step_us=0.0))


def calibrate_serve(inp: ServeCalibrateInput, registry=None, progress=None) -> ServeCalibrateResult:
    import numpy as np

    from engine.infer.backends import make_runner
    from engine.infer.capabilities import resolve_backend
    from engine.infer.loading import load
    from engine.requires import require_torch

    require_torch("serving calibration")
    if registry is not None:
        from engine.access import require_write

        require_write("calibration")
    levels = sorted({int(require_number("concurrency level", c, low=1, high=256, integer=True)) for c in inp.levels})
    if not levels:
        raise ValidationError("give at least one concurrency level")
    out_tokens = int(require_number("output tokens", inp.output_tokens, low=2, high=4096, integer=True))
    repeats = int(require_number("repeats", inp.repeats, low=1, high=100, integer=True))
    from engine.lab.hf_train import is_hf_run

    if inp.hf_model or (inp.run and is_hf_run(inp.run)):
        from engine.infer.hf_infer import servable

        loaded = servable(inp.hf_model, inp.run)
    else:
        loaded = load(inp.run, inp.preset)
    cfg = loaded.config
    if cfg.n_classes:
        raise ValidationError("serving calibration needs a language model; this run is a classifier")
    prompt = int(require_number("prompt tokens", inp.prompt_tokens or max(1, cfg.context // 2), low=1,
                                high=cfg.context - out_tokens, integer=True)) if cfg.context > out_tokens else None
    if prompt is None:
        raise ValidationError(f"the context ({cfg.context}) leaves no room for {out_tokens} output tokens")
    name, how = resolve_backend(inp.backend)
    runner = make_runner(loaded, name, "fp32")
    hw, peak_basis, bw_basis, dev_name = hardware(runner.device)
    reg_name = None
    if registry is not None:
        from engine.workspace import runs_dir

        label = f"serve-calibrate-{loaded.source.split(':')[-1].split('/')[-1]}-{name}"
        reg_name = registry.create_run(label, asdict(inp), runs_dir() / label, kind=KIND, status="running")
        registry.set_pid(reg_name, os.getpid())
    try:
        rng = np.random.default_rng(0)
        rows = []
        for c in levels:
            if progress:
                progress({"event": "level", "concurrency": c})
            ids = rng.integers(0, cfg.vocab_size, size=(c, prompt), dtype=np.int64)
            runner.prefill(ids)  # warm-up at this shape
            pre, dec = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                _, cache = runner.prefill(ids)
                runner.sync()
                pre.append(time.perf_counter() - t0)
                tok = rng.integers(0, cfg.vocab_size, size=(c, 1), dtype=np.int64)
                t0 = time.perf_counter()
                for k in range(out_tokens):
                    _, cache = runner.step(tok, cache, prompt + k)
                runner.sync()
                dec.append(c * out_tokens / (time.perf_counter() - t0))
            est = predict_serving(cfg, hw, prompt, out_tokens, c)
            m_pre, m_dec = statistics.median(pre), statistics.median(dec)
            rows.append({"concurrency": c, "measured_prefill_s": m_pre, "predicted_prefill_s": c * est.prefill_seconds,
                         "measured_decode_tokens_per_s": m_dec, "predicted_decode_tokens_per_s": est.decode_tokens_per_s,
                         "prefill_bound": est.prefill_bound, "decode_bound": est.decode_bound})
        eff_c = statistics.median(r["predicted_prefill_s"] / r["measured_prefill_s"] for r in rows)
        eff_b = statistics.median(r["measured_decode_tokens_per_s"] / r["predicted_decode_tokens_per_s"] for r in rows)
        worst = 0.0
        for r in rows:
            cal = predict_serving(cfg, hw, prompt, out_tokens, r["concurrency"], min(1.0, eff_c), min(1.0, eff_b))
            r["calibrated_predicted_decode_tokens_per_s"] = cal.decode_tokens_per_s
            r["calibrated_predicted_prefill_s"] = r["concurrency"] * cal.prefill_seconds
            r["decode_ratio_measured_over_calibrated"] = r["measured_decode_tokens_per_s"] / cal.decode_tokens_per_s
            worst = max(worst, abs(r["decode_ratio_measured_over_calibrated"] - 1.0))
        notes = []
        if eff_c > 1 or eff_b > 1:
            notes.append("an implied efficiency above 1 means the roofline's peak or bandwidth is below what this "
                         "backend reached (e.g. cache-resident weights on a CPU); the calibrated prediction caps it at 1")
        try:
            load_avg = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            load_avg = None
        result = ServeCalibrateResult(
            source=loaded.source, backend=name, backend_choice=how, device=runner.device, device_name=dev_name,
            prompt_tokens=prompt, output_tokens=out_tokens, levels=rows, peak_tflops=hw.fp32_tflops if
            runner.device == "cpu" else hw.bf16_tflops, peak_basis=peak_basis, bandwidth_gbs=hw.bandwidth_gbs,
            bandwidth_basis=bw_basis, implied_prefill_efficiency=eff_c, implied_decode_efficiency=eff_b,
            calibrated_decode_ratio_max_error=worst, load_average=load_avg, notes=notes)
    except BaseException as exc:
        if registry is not None and reg_name:
            msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            registry.set_status(reg_name, "failed", error=msg)
        raise
    if registry is not None and reg_name:
        registry.set_status(reg_name, "finished", summary=result.to_dict())
    return result


def calibrate_serve_cli(args) -> dict:
    """``calibrate --serve``: records in the registry unless --no-record."""
    from engine.requires import require_torch

    require_torch("calibrate --serve")
    hf_model = getattr(args, "hf_model", None)
    if (bool(args.run) + bool(args.preset) + bool(hf_model)) != 1:
        raise ValidationError("calibrate --serve needs exactly one of --run DIR or --preset NAME (or --hf-model DIR)")
    from engine.store import Registry

    registry = None if args.no_record else Registry(args.registry)
    return calibrate_serve(ServeCalibrateInput(run=args.run, preset=args.preset, backend=args.backend, hf_model=hf_model),
                           registry=registry).to_dict()
