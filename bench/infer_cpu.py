"""Inference on this CPU, side by side in one run (issue 8's CPU benchmarks), shakespeare-char preset.

    PYTHONPATH=. python bench/infer_cpu.py [--run DIR | --train-steps 60] [--iters 15] [--out results.json]

Prints, each as a ratio measured in the same process with the calls interleaved (so background load hits
both sides alike):
- full forward at 1×128 and 8×128: onnxruntime fp32 (fused GroupQueryAttention graph) and onnxruntime int8
  (dynamic quantization) vs torch eager fp32, and int8's validation-loss change;
- KV-cache generation vs full recomputation at 256 new tokens (torch, greedy, same tokens checked);
- decode tokens/s with onnxruntime's KV-cache graph vs torch's KV cache at batch 1.
The model: a shakespeare-char preset run trained for --train-steps on the built-in stories corpus with the
char tokenizer (weights matter only for the int8 loss change), unless --run names one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _train(steps: int, folder: Path) -> Path:
    from engine.lab.trainer import TrainConfig, train

    out = folder / "shakespeare-char"
    res = train(TrainConfig(sample="stories", tokenizer="char", preset="shakespeare-char", max_steps=steps,
                            eval_every=steps, eval_batches=4, batch_size=8, device="cpu", out=str(out), sample_tokens=0))
    print(f"trained {out} for {steps} steps: val loss {res.val_loss:.3f}", file=sys.stderr)
    return out


def _interleaved(calls: dict, iters: int, warmup: int = 2) -> dict[str, float]:
    for f in calls.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in calls}
    for _ in range(iters):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a trained shakespeare-char (or any) run folder")
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both torch and onnxruntime (default: one per core)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()

    import numpy as np
    import torch

    from engine.infer.backends import make_runner
    from engine.infer.export import ExportInput, default_path, ensure_onnx, export, int8_accuracy
    from engine.infer.generate import Stream
    from engine.lab.loader import load_run

    os.environ.setdefault("PREFLIGHT_HOME", tempfile.mkdtemp(prefix="preflight-bench-"))
    torch.set_num_threads(args.threads)
    run = Path(args.run) if args.run else _train(args.train_steps, Path(os.environ["PREFLIGHT_HOME"]))
    loaded = load_run(run)
    cfg = loaded.config
    print(f"model: {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, context {cfg.context}, "
          f"vocab {cfg.vocab_size}, {loaded.model.num_params():,} parameters", file=sys.stderr)
    int8_path = default_path(loaded, "model", "int8", "fused", 18)
    if not int8_path.is_file():
        export(ExportInput(dtype="int8", out=str(int8_path)), loaded=loaded)
    torch_r = make_runner(loaded, "torch", "fp32")
    ort_r = make_runner(loaded, "onnxruntime", "fp32", threads=args.threads)
    int8_r = make_runner(loaded, "onnxruntime", "int8", threads=args.threads)
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
                 "load_before": list(os.getloadavg()), "threads": args.threads, "params": loaded.model.num_params(), "forward": []}
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        ids = rng.integers(0, cfg.vocab_size, (batch, min(128, cfg.context)), dtype=np.int64)
        med = _interleaved({"torch": lambda: torch_r.forward(ids), "ort": lambda: ort_r.forward(ids),
                            "int8": lambda: int8_r.forward(ids)}, args.iters)
        ref = torch_r.forward(ids)
        row = {"shape": f"{batch}x{ids.shape[1]}", "torch_ms": med["torch"] * 1e3, "ort_fp32_ms": med["ort"] * 1e3,
               "ort_int8_ms": med["int8"] * 1e3, "ort_fp32_speedup": med["torch"] / med["ort"],
               "ort_int8_speedup": med["torch"] / med["int8"],
               "ort_fp32_rel_err": float(np.abs(ort_r.forward(ids) - ref).max() / np.abs(ref).max()),
               "ort_int8_max_logit_rel_err": float(np.abs(int8_r.forward(ids) - ref).max() / np.abs(ref).max())}
        out["forward"].append(row)
        print(json.dumps(row), file=sys.stderr)
    l8, l32, _ = int8_accuracy(loaded, str(int8_path), str(ensure_onnx(loaded)))
    if l8 is not None:
        out["int8_val_loss"], out["fp32_val_loss"], out["int8_val_loss_change"] = l8, l32, (l8 - l32) / l32
    # KV cache vs full recompute (torch, greedy), and decode rates at batch 1
    n = args.new_tokens
    prompt = "".join(c for c in "Once upon a time" if c in getattr(loaded.tokenizer, "chars", c)) or \
        loaded.tokenizer.decode([0])
    kv = Stream(loaded, torch_r, prompt, max_new_tokens=n, temperature=0).result()
    full = Stream(loaded, torch_r, prompt, max_new_tokens=n, temperature=0, use_cache=False).result()
    ort_kv = Stream(loaded, ort_r, prompt, max_new_tokens=n, temperature=0).result()
    ort_full = Stream(loaded, ort_r, prompt, max_new_tokens=n, temperature=0, use_cache=False).result()
    torch_kv2 = Stream(loaded, torch_r, prompt, max_new_tokens=n, temperature=0).result()
    out["kv_cache"] = {"new_tokens": n, "prompt_tokens": kv.prompt_tokens,
                       "same_tokens": kv.tokens == full.tokens == ort_kv.tokens == ort_full.tokens,
                       "kv_total_s": kv.total_s, "recompute_total_s": full.total_s,
                       "kv_speedup": full.total_s / kv.total_s,
                       "ort_kv_total_s": ort_kv.total_s, "ort_recompute_total_s": ort_full.total_s,
                       "ort_kv_speedup": ort_full.total_s / ort_kv.total_s}
    torch_rate = statistics.median([kv.tokens_per_s, torch_kv2.tokens_per_s])
    out["decode_batch1"] = {"torch_tokens_per_s": torch_rate, "ort_tokens_per_s": ort_kv.tokens_per_s,
                            "ort_speedup": ort_kv.tokens_per_s / torch_rate}
    out["load_after"] = list(os.getloadavg())
    print(json.dumps(out, indent=1))
    print("\nratio                                   measured   aim", file=sys.stderr)
    for r in out["forward"]:
        print(f"onnxruntime fp32 vs torch, {r['shape']:<8}      {r['ort_fp32_speedup']:5.2f}x    >= 1.8x", file=sys.stderr)
        print(f"onnxruntime int8 vs torch, {r['shape']:<8}      {r['ort_int8_speedup']:5.2f}x    >= 2.5x", file=sys.stderr)
    if out.get("int8_val_loss_change") is not None:
        print(f"int8 validation-loss change               {out['int8_val_loss_change']:+.2%}    within 1%", file=sys.stderr)
    print(f"KV cache vs recompute, {n} new tokens, torch       {out['kv_cache']['kv_speedup']:5.2f}x    >= 5x",
          file=sys.stderr)
    print(f"KV cache vs recompute, {n} new tokens, onnxruntime {out['kv_cache']['ort_kv_speedup']:5.2f}x    >= 5x",
          file=sys.stderr)
    print(f"ORT KV decode vs torch KV decode, batch 1  {out['decode_batch1']['ort_speedup']:5.2f}x    >= 1.5x",
          file=sys.stderr)
    print(f"load average before {out['load_before']}, after {out['load_after']}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")


def _machine() -> str:
    from engine.lab.device import device_name

    return device_name("cpu")


if __name__ == "__main__":
    main()
