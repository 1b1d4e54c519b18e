"""GPU inference figures for issue 8, one JSON (run by bench/gpu_check.sh on a lent GPU machine).

    python bench/infer_gpu.py --out gpu_results.json            # on the GPU machine
    python bench/infer_gpu.py --dry-run --out /tmp/dry.json     # here: tiny shapes on the CPU, same code paths

1. Attention core, causal, batch 4 × 16 heads × 4096 tokens × head dim 128 (the shapes of the H100 figure in
   issue 8: PyTorch SDPA bf16 at 528 TFLOP/s): the bare kernel (SDPA bf16 vs a naive fp32 softmax(QKᵀ)V),
   then the lab's whole attention core (projections + rotary + GQA + SDPA) on every available backend in
   fp16 through engine.infer.bench (TFLOP/s against the catalog's datasheet peak).
2. A gpt2-small-shaped lab model at batch 1 × 128 tokens, fp16: PyTorch eager, PyTorch with CUDA-graph replay
   (torch.cuda.CUDAGraph, static input), and each available ONNX backend (onnxruntime-cuda, -trt, tensorrt).
Figures are medians after warm-up, timed with CUDA events. Every section records its error instead of
stopping the script, so one JSON always comes back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cuda_time(fn, iters: int, warmup: int, cuda: bool) -> float:
    import torch

    for _ in range(warmup):
        fn()
    if not cuda:
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return statistics.median(ts)


def attention_kernel(b, h, t, d, cuda: bool, iters: int) -> dict:
    """SDPA (bf16 on CUDA) vs naive fp32 attention, causal: TFLOP/s counted as 2·B·H·T²·d (causal half of 4·B·H·T²·d)."""
    import torch
    import torch.nn.functional as F

    dev = "cuda" if cuda else "cpu"
    dt = torch.bfloat16 if cuda else torch.float32
    q, k, v = (torch.randn(b, h, t, d, device=dev, dtype=dt) for _ in range(3))
    flops = 2.0 * b * h * t * t * d
    sdpa = _cuda_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), iters, 3, cuda)
    qf, kf, vf = q.float(), k.float(), v.float()
    mask = torch.ones(t, t, device=dev, dtype=torch.bool).tril()

    def naive():
        s = (qf @ kf.transpose(-1, -2)) / d**0.5
        return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ vf

    nv = _cuda_time(naive, max(2, iters // 3), 1, cuda)
    return {"shape": [b, h, t, d], "sdpa_dtype": str(dt).replace("torch.", ""), "sdpa_ms": sdpa * 1e3,
            "sdpa_tflops": flops / sdpa / 1e12, "naive_fp32_ms": nv * 1e3, "naive_fp32_tflops": flops / nv / 1e12,
            "sdpa_speedup_over_naive": nv / sdpa}


def attention_core_backends(seq_lens, batch, dtype, backends, iters, d_model, heads, context) -> dict:
    from engine.infer.bench import BenchInput, bench
    from engine.lab.loader import Loaded
    from engine.lab.model import ModelConfig, Transformer

    import torch

    cfg = ModelConfig(vocab_size=258, context=context, n_layers=1, n_heads=heads, n_kv_heads=heads, d_model=d_model,
                      d_ff=4 * d_model, dropout=0.0)
    torch.manual_seed(0)
    loaded = Loaded(model=Transformer(cfg).eval(), config=cfg, tokenizer=None, source=f"preset:attention-core-d{d_model}-h{heads}",
                    checkpoint=None, step=None, key=f"attn-{d_model}-{heads}-{context}")
    import engine.infer.loading as loading

    orig = loading.load
    loading.load = lambda *a, **k: loaded  # bench() loads by name; hand it this in-memory model
    try:
        r = bench(BenchInput(preset="tiny", backends=tuple(backends), batch=batch, dtype=dtype, part="attention",
                             seq_lens=tuple(seq_lens), warmup=2, iters=iters))
    finally:
        loading.load = orig
    out = r.to_dict()
    best = {}
    for row in out["sweep"]:
        best.setdefault(row["seq_len"], {})[row["backend"]] = row["tflops"]
    out["fraction_of_torch_sdpa_core"] = {
        str(t): {k: v / rates["torch"] for k, v in rates.items()} for t, rates in best.items() if "torch" in rates}
    return out


def latency_b1(backends, dtype, seq, cuda: bool, iters: int, preset: str) -> dict:
    """Batch-1 full-forward latency: torch eager, torch CUDA-graph replay, and each ONNX backend."""
    import numpy as np
    import torch

    from engine.infer.backends import make_runner
    from engine.infer.capabilities import backend_info
    from engine.infer.loading import load_preset

    loaded = load_preset(preset, context=max(seq, 8))
    cfg = loaded.config
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, seq), dtype=np.int64)
    rows = {}
    dev = "cuda" if cuda else "cpu"
    tdt = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    model = loaded.model.to(dev, tdt if cuda else torch.float32).eval()
    x = torch.as_tensor(ids, device=dev)
    with torch.inference_mode():
        rows["torch-eager"] = _cuda_time(lambda: model(x), iters, 3, cuda) * 1e3
        if cuda:
            static_x = x.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(static_x)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = model(static_x)  # noqa: F841 - kept alive with the graph
            rows["torch-cuda-graph"] = _cuda_time(graph.replay, iters, 3, True) * 1e3
        else:
            rows["torch-cuda-graph"] = None
    loaded.model = loaded.model.float().cpu()
    reasons = {}
    for name in backends:
        info = backend_info(name)
        if not info.available or dtype not in info.dtypes:
            reasons[name] = info.reason or f"cannot run {dtype}"
            continue
        try:
            r = make_runner(loaded, name, dtype)
            rows[name] = _cuda_time(lambda r=r: r.forward(ids), iters, 3, r.device.startswith("cuda")) * 1e3
        except Exception as exc:  # noqa: BLE001 - record and go on
            reasons[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return {"preset": preset, "batch": 1, "seq_len": seq, "dtype": dtype, "latency_ms": rows, "not_run": reasons}


def main() -> None:
    ap = argparse.ArgumentParser(description="GPU inference figures (issue 8)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: exercises the code paths only")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--backends", default="torch,onnxruntime-cuda,onnxruntime-trt,tensorrt")
    args = ap.parse_args()
    import torch

    from engine.infer.capabilities import list_backends

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        raise SystemExit("infer_gpu.py: no CUDA GPU visible to PyTorch; use --dry-run to check the script on a CPU")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.dry_run:
        backends = [b if b != "onnxruntime-cuda" else "onnxruntime" for b in backends]
        shapes = dict(b=1, h=2, t=64, d=16, seq_lens=(16, 32), batch=1, d_model=32, heads=2, context=32,
                      preset="tiny", seq=16, dtype="fp32", iters=2)
    else:
        shapes = dict(b=4, h=16, t=4096, d=128, seq_lens=(1024, 2048, 4096), batch=4, d_model=2048, heads=16,
                      context=4096, preset="gpt2-small", seq=128, dtype="fp16", iters=args.iters)
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": args.dry_run,
           "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)", "torch": torch.__version__,
           "backends": [b.to_dict() for b in list_backends()]}
    sections = {
        "attention_kernel": lambda: attention_kernel(shapes["b"], shapes["h"], shapes["t"], shapes["d"], cuda,
                                                     shapes["iters"]),
        "attention_core": lambda: attention_core_backends(shapes["seq_lens"], shapes["batch"], shapes["dtype"],
                                                          [b for b in backends], shapes["iters"], shapes["d_model"],
                                                          shapes["heads"], shapes["context"]),
        "latency_batch1": lambda: latency_b1([b for b in backends if b != "torch"], shapes["dtype"], shapes["seq"],
                                             cuda, shapes["iters"], shapes["preset"]),
    }
    for name, fn in sections.items():
        t0 = time.time()
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one JSON always comes back
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()[-2000:]}
        out[name + "_s"] = round(time.time() - t0, 1)
        print(f"{name}: {out[name + '_s']} s", file=sys.stderr)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "backends"}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    os.environ.setdefault("PREFLIGHT_HOME", os.path.join(os.getcwd(), ".preflight-gpu-check"))
    main()
