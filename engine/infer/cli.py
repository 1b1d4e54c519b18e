"""CLI commands of engine.infer (registered by engine/cli.py). Heavy imports stay inside handlers.

    preflight backends --json
    preflight export --run runs/tiny-1 --part model --dtype fp32 --json
    preflight export --run runs/tiny-1 --part attention --out attn.onnx --json
    preflight generate --run runs/tiny-1 --prompt "Once upon" --backend auto --max-new-tokens 64 --json
    preflight classify --run runs/sentiment-1 --text "what a lovely day" --json
    preflight bench --preset shakespeare-char --backends torch,onnxruntime --batch 8 --seq-len 128 --json
    preflight bench --preset shakespeare-char --part attention --seq-lens 64,128,256 --json
    preflight calibrate --serve --preset shakespeare-char --json   (--serve added to the lab's calibrate)
"""

from __future__ import annotations

import argparse

from engine.cliargs import finite as _float
from engine.cliargs import whole as _int


def _list(name: str):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(s.strip() for s in text.split(",") if s.strip())
        if not items:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list, got {text!r}")
        return items

    parse.__name__ = name
    return parse


def _ints(name: str):
    def parse(text: str) -> tuple[int, ...]:
        out = []
        for s in text.split(","):
            s = s.strip()
            if not s:
                continue
            out.append(_int(name)(s))
        if not out:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list of whole numbers, got {text!r}")
        return tuple(out)

    parse.__name__ = name
    return parse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("backends", parents=[common], help="inference backends on this machine, and why any is missing")
    b.set_defaults(handler=_backends, human=_backends_human)

    e = sub.add_parser("export", parents=[common], help="export a run's model or attention core to ONNX (checked)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR", help="run folder (or registered run name)")
    src.add_argument("--hf-model", metavar="DIR", help="a Hugging Face model folder (onnxruntime-genai's builder)")
    src.add_argument("--preset", metavar="NAME", help="a lab preset with random weights")
    e.add_argument("--part", type=str.lower, choices=("model", "attention"), default="model")
    e.add_argument("--dtype", type=str.lower, choices=("fp32", "fp16", "bf16", "int8", "int4"), default="fp32")
    e.add_argument("--provider", type=str.lower, choices=("cpu", "cuda"), default="cpu",
                   help="with --hf-model (or an HF run): the execution provider the graph is built for")
    e.add_argument("--opset", type=_int("opset"), default=18, metavar="N", help="ONNX opset, 18-23 (default 18)")
    e.add_argument("--graph", type=str.lower, choices=("fused", "portable"), default="fused",
                   help="fused: onnxruntime contrib attention; portable: standard ops only (TensorRT)")
    e.add_argument("--out", metavar="FILE", help="target file (default: <run>/onnx/...)")
    e.add_argument("--best", action="store_true", help="the best checkpoint instead of the latest")
    e.set_defaults(handler=_export)

    g = sub.add_parser("generate", parents=[common], help="stream text from a trained language model on a backend")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR", help="run folder (or registered run name)")
    src.add_argument("--hf-model", metavar="DIR", help="a Hugging Face model folder")
    g.add_argument("--prompt", required=True, metavar="TEXT")
    g.add_argument("--backend", type=str.lower, default="torch", metavar="NAME",
                   help="torch (default), torch-compile, onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt, auto")
    g.add_argument("--dtype", type=str.lower, choices=("fp32", "fp16", "bf16", "int8", "int4"), default="fp32")
    g.add_argument("--max-new-tokens", type=_int("max-new-tokens"), default=200, metavar="N")
    g.add_argument("--temperature", type=_float("temperature"), default=0.8, metavar="T")
    g.add_argument("--top-k", type=_int("top-k"), default=40, metavar="K", help="0: no top-k")
    g.add_argument("--seed", type=_int("seed"), default=0, metavar="S")
    g.add_argument("--no-cache", action="store_true", help="recompute the whole window each token (no KV cache)")
    g.add_argument("--best", action="store_true", help="use the best checkpoint instead of the latest")
    g.set_defaults(handler=_generate, human=lambda d: d["text"])

    c = sub.add_parser("classify", parents=[common], help="class probabilities from a trained classifier")
    c.add_argument("--run", required=True, metavar="DIR")
    c.add_argument("--text", required=True, metavar="TEXT")
    c.add_argument("--backend", type=str.lower, default="torch", metavar="NAME")
    c.add_argument("--dtype", type=str.lower, choices=("fp32", "fp16", "bf16", "int8"), default="fp32")
    c.add_argument("--best", action="store_true")
    c.set_defaults(handler=_classify, human=lambda d: f"{d['label']}  " + ", ".join(
        f"{k}={v:.3f}" for k, v in d["probabilities"].items()))

    k = sub.add_parser("bench", parents=[common], help="backends side by side: p50/p90 latency, throughput, error")
    src = k.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR")
    src.add_argument("--preset", metavar="NAME")
    src.add_argument("--onnx", metavar="FILE", help="a bare ONNX file (onnxruntime backends only)")
    src.add_argument("--hf-model", metavar="DIR", help="a Hugging Face model folder: decode and prefill per backend")
    k.add_argument("--dtypes", type=_list("dtypes"), default=("fp32",), metavar="LIST",
                   help="with --hf-model: precisions to compare, e.g. fp32,int8 (int8/int4 on onnxruntime)")
    k.add_argument("--batches", type=_ints("batches"), default=(1, 8), metavar="LIST",
                   help="with --hf-model: decode batch sizes")
    k.add_argument("--backends", type=_list("backends"), default=("torch", "onnxruntime"), metavar="LIST")
    k.add_argument("--batch", type=_int("batch"), default=1, metavar="B")
    k.add_argument("--seq-len", type=_int("seq-len"), default=128, metavar="S")
    k.add_argument("--seq-lens", type=_ints("seq-lens"), metavar="LIST", help="attention sweep, e.g. 64,128,256")
    k.add_argument("--dtype", type=str.lower, choices=("fp32", "fp16", "bf16", "int8"), default="fp32")
    k.add_argument("--part", type=str.lower, choices=("model", "attention"), default="model")
    k.add_argument("--warmup", type=_int("warmup"), default=2, metavar="N")
    k.add_argument("--iters", type=_int("iters"), default=10, metavar="N")
    k.add_argument("--threads", type=_int("threads"), metavar="N", help="onnxruntime intra-op threads")
    k.add_argument("--progress", metavar="FILE", help=argparse.SUPPRESS)  # JSON lines for the page's job view
    k.set_defaults(handler=_bench, human=_bench_human)
    _serving_calibration(sub.choices["calibrate"])  # engine/cli.py registers the lab's commands first


def _serving_calibration(c: argparse.ArgumentParser) -> None:
    """``calibrate --serve``: the lab's ``calibrate`` times training steps; this room adds serving
    calibration to the same command (one command line for users), so the lab never imports this room."""
    c.add_argument("--serve", action="store_true",
                   help="serving calibration: measured prefill and decode vs the serving estimator (engine.infer)")
    c.add_argument("--run", metavar="DIR", help="with --serve: a trained run instead of a preset")
    c.add_argument("--hf-model", metavar="DIR", help="with --serve: a Hugging Face model folder")
    c.add_argument("--backend", type=str.lower, default="auto", metavar="NAME", help="with --serve: inference backend")
    training = c.get_default("handler")

    def handler(args: argparse.Namespace) -> dict:
        if not args.serve:
            return training(args)
        from engine.infer.serve_calibrate import calibrate_serve_cli

        return calibrate_serve_cli(args)

    c.set_defaults(handler=handler)


def _backends(args: argparse.Namespace) -> dict:
    from engine.infer.capabilities import list_backends, resolve_backend

    rows = [b.to_dict() for b in list_backends()]
    for r in rows:
        r["dtypes"] = list(r["dtypes"])
    try:
        auto, how = resolve_backend("auto")
    except Exception:  # noqa: BLE001 - nothing available: say so in the answer
        auto, how = None, "no backend available"
    return {"backends": rows, "auto": auto, "auto_reason": how}


def _backends_human(d: dict) -> str:
    lines = [f"{r['name']:<18} {'yes' if r['available'] else 'no ':<4} {r['device']:<10} {r['version'] or '':<12} "
             f"{r['reason']}" for r in d["backends"]]
    lines.append(f"auto -> {d['auto']}")
    return "\n".join(lines)


def _hf(args: argparse.Namespace) -> bool:
    """A Hugging Face model folder, or a run that fine-tuned one (engine/infer/hf_infer.py)."""
    if getattr(args, "hf_model", None):
        return True
    if not getattr(args, "run", None):
        return False
    from engine.lab.hf_train import is_hf_run
    from engine.store import resolve_run_dir

    return is_hf_run(resolve_run_dir(args.run))


def _export(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("export")
    if _hf(args):
        from engine.infer.hf_infer import export_onnx, model_folder

        return export_onnx(model_folder(args.hf_model, args.run), args.dtype, args.provider).to_dict()
    from engine.infer.export import ExportInput, export

    return export(ExportInput(run=args.run, preset=args.preset, part=args.part, dtype=args.dtype, opset=args.opset,
                              out=args.out, graph=args.graph, which="best" if args.best else "latest")).to_dict()


def _generate(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("generate")
    if _hf(args):
        from engine.infer.hf_infer import generate_hf

        return generate_hf(hf_model=args.hf_model, run=args.run, prompt=args.prompt, backend=args.backend,
                           precision=args.dtype, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, seed=args.seed)
    from engine.infer.generate import generate

    return generate(args.run, args.prompt, backend=args.backend, max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                    which="best" if args.best else "latest", dtype=args.dtype, use_cache=not args.no_cache).to_dict()


def _classify(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("classify")
    from engine.infer.generate import classify_run

    return classify_run(args.run, args.text, backend=args.backend, which="best" if args.best else "latest",
                        dtype=args.dtype).to_dict()


def _bench(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("bench")
    if _hf(args):
        from engine.infer.hf_bench import HFBenchInput, bench_hf

        return bench_hf(HFBenchInput(hf_model=args.hf_model, run=args.run, backends=args.backends, dtypes=args.dtypes,
                                     batches=args.batches, prompt_tokens=args.seq_len, iters=args.iters,
                                     threads=args.threads)).to_dict()
    from engine.infer.bench import BenchInput, bench

    def write_progress(event: dict) -> None:
        import json

        with open(args.progress, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")

    return bench(BenchInput(run=args.run, preset=args.preset, onnx=args.onnx, backends=args.backends, batch=args.batch,
                            seq_len=args.seq_len, dtype=args.dtype, part=args.part, seq_lens=args.seq_lens,
                            warmup=args.warmup, iters=args.iters, threads=args.threads),
                 progress=write_progress if args.progress else None).to_dict()


def _bench_human(d: dict) -> str:
    if "decode" in d:  # a model folder's benchmark (engine/infer/hf_bench.py)
        return "\n".join(f"  {r['backend']:<18} {r['dtype']:<5} batch {r['batch']:<3} decode {r['decode_tokens_per_s']:9.1f} "
                         f"tok/s (predicted {r['predicted_decode_tokens_per_s']:9.1f})" for r in d["decode"]) + "\n" + \
            "\n".join(f"  {r['backend']:<18} {r['dtype']:<5} prefill {r['prompt_tokens']} tokens {r['prefill_s'] * 1e3:9.1f} ms"
                      for r in d["prefill"])
    lines = [f"{d['part']} of {d['source']}, batch {d['batch']} × {d['seq_len']} tokens, {d['dtype']}"]
    for r in d["results"]:
        if r["p50_ms"] is None:
            lines.append(f"  {r['backend']:<18} n/a  ({r['reason']})")
        else:
            err = f"{r['rel_err']:.2e}" if r.get("rel_err") is not None else "-"
            lines.append(f"  {r['backend']:<18} p50 {r['p50_ms']:9.2f} ms  p90 {r['p90_ms']:9.2f} ms  "
                         f"{r['throughput_per_s']:12,.0f} tok/s  rel_err {err}")
    for r in d.get("sweep") or []:
        lines.append(f"  attention {r['backend']:<14} T={r['seq_len']:<6} {r['tflops']:.3f} TFLOP/s "
                     f"({(r['fraction_of_roofline'] or 0):.0%} of {d['roofline_tflops']:.2f})")
    return "\n".join(lines)
