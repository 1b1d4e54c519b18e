"""CLI commands of engine.lab (registered by engine/cli.py). Heavy imports stay inside handlers.

    preflight train --sample stories --preset tiny --max-steps 300 --out runs/tiny-1 --json
    preflight train --resume runs/tiny-1 --max-steps 600 --json
    preflight calibrate --preset gpt2-small --device cuda --json
    preflight runs --json
    (``calibrate --serve``, serving calibration, is added to this command by engine/infer/cli.py)
    torchrun --nproc-per-node 2 -m engine train --sample stories --preset tiny --device cpu --out runs/ddp
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.cliargs import finite as _float
from engine.cliargs import whole as _int


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's commands to the top-level parser."""
    t = sub.add_parser("train", parents=[common], help="train a small Transformer (model lab)")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="a text/CSV/TSV/JSONL/Parquet file, or an upload's name")
    src.add_argument("--sample", metavar="NAME", help="a built-in corpus: arithmetic, stories, sentiment")
    t.add_argument("--task", type=str.lower, choices=("lm", "classify"), default="lm")
    t.add_argument("--text-col", metavar="C")
    t.add_argument("--label-col", metavar="L")
    t.add_argument("--tokenizer", type=str.lower, choices=("byte", "char", "bpe"), default="byte")
    t.add_argument("--bpe-vocab", type=_int("bpe-vocab"), default=4096, metavar="V")
    t.add_argument("--preset", default="tiny", metavar="NAME", help="tiny, small, shakespeare-char, gpt2-small")
    for flag in ("n-layers", "n-heads", "n-kv-heads", "d-model", "d-ff", "context"):
        t.add_argument(f"--{flag}", type=_int(flag), metavar="N", help=argparse.SUPPRESS)
    t.add_argument("--dropout", type=_float("dropout"), metavar="P", help=argparse.SUPPRESS)
    t.add_argument("--max-steps", type=_int("max-steps"), metavar="N")
    t.add_argument("--batch-size", type=_int("batch-size"), metavar="B", help="global batch (sequences per step)")
    t.add_argument("--grad-accum", type=_int("grad-accum"), default=1, metavar="K", help="micro-batches per step")
    t.add_argument("--lr", type=_float("lr"), metavar="LR")
    t.add_argument("--warmup", type=_int("warmup"), metavar="N", help="warmup steps")
    t.add_argument("--eval-every", type=_int("eval-every"), metavar="N")
    t.add_argument("--eval-batches", type=_int("eval-batches"), default=10, metavar="N")
    t.add_argument("--early-stop", type=_int("early-stop"), default=0, metavar="N",
                   help="stop after N evaluations without improvement (0: off)")
    t.add_argument("--checkpoint-every", type=_int("checkpoint-every"), metavar="N")
    t.add_argument("--sample-every", type=_int("sample-every"), default=0, metavar="N")
    t.add_argument("--stop-at", type=_int("stop-at"), metavar="N", help=argparse.SUPPRESS)
    t.add_argument("--device", type=str.lower, choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--dtype", type=str.lower, choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    t.add_argument("--seed", type=_int("seed"), default=0, metavar="S")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (compile time reported apart)")
    t.add_argument("--fsdp", action="store_true", help="shard the model over torchrun processes (FSDP2)")
    t.add_argument("--threads", type=_int("threads"), metavar="N", help="CPU threads (default: one per core)")
    t.add_argument("--out", metavar="DIR", help="the run folder (created; must be new or empty)")
    t.add_argument("--name", metavar="NAME", help="run name in the registry (default: the folder's name)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    t.add_argument("--registry", metavar="PATH", help="registry database (default: $PREFLIGHT_HOME/registry.sqlite)")
    t.add_argument("--lora-from", metavar="RUN", help="LoRA fine-tune this finished run (PEFT); needs --out")
    t.add_argument("--rank", type=_int("rank"), metavar="R", help="LoRA rank (with --lora-from; default 8)")
    t.add_argument("--alpha", type=_float("alpha"), metavar="A", help="LoRA alpha (default 2 x rank)")
    t.add_argument("--target", type=str.lower, choices=("qv", "attention", "all-linear"), default="all-linear",
                   help="layers that get LoRA adapters (default all-linear)")
    t.add_argument("--hf-model", metavar="DIR", help="fine-tune this Hugging Face model folder (engine/lab/hf_train.py)")
    t.add_argument("--method", type=str.lower, choices=("full", "lora", "qlora"), default="lora",
                   help="with --hf-model: full fine-tuning, LoRA, or QLoRA (CUDA + bitsandbytes)")
    t.add_argument("--prompt-col", metavar="C", help="with --hf-model: instruction data's prompt column")
    t.add_argument("--response-col", metavar="C", help="with --hf-model: the response column (the loss falls on it)")
    t.add_argument("--config-json", metavar="JSON", help=argparse.SUPPRESS)  # a whole TrainConfig (the page's launcher)
    t.set_defaults(handler=_train, human=_train_human)

    c = sub.add_parser("calibrate", parents=[common], help="measure tokens/s, FLOP/s, MFU and memory of a preset")
    c.add_argument("--preset", metavar="NAME")
    c.add_argument("--device", type=str.lower, choices=("auto", "cpu", "cuda"), default="auto")
    c.add_argument("--batch-size", type=_int("batch-size"), metavar="B")
    c.add_argument("--steps", type=_int("steps"), default=10, metavar="N")
    c.add_argument("--warmup", type=_int("warmup"), default=3, metavar="N")
    c.add_argument("--dtype", type=str.lower, choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    c.add_argument("--context", type=_int("context"), metavar="T", help="sequence length (default: preset's)")
    c.add_argument("--compile", action="store_true")
    c.add_argument("--registry", metavar="PATH", help="registry database (default: $PREFLIGHT_HOME/registry.sqlite)")
    c.add_argument("--no-record", action="store_true",
                   help="do not record the result in the registry (where the estimator pages read measured MFU)")
    c.set_defaults(handler=_calibrate)

    r = sub.add_parser("runs", parents=[common], help="list training runs in the registry (or delete one)")
    r.add_argument("--registry", metavar="PATH")
    r.add_argument("--delete", metavar="NAME", help="delete this run: its registry rows and its folder (refused "
                   "while it runs, and for the shipped demo)")
    r.set_defaults(handler=_runs, human=_runs_human)
    # generate moved to engine.infer.cli (backends, streaming, KV cache); torch stays its default backend


def _train(args: argparse.Namespace) -> dict:
    from engine.errors import ValidationError
    from engine.requires import require_torch

    require_torch("train")  # PREFLIGHT_TORCH=skip installs: one line (exit 2), not an import traceback
    from engine.lab.trainer import TrainConfig, train

    from engine.lab.hf_train import is_hf_run

    if args.hf_model or (args.resume and is_hf_run(args.resume)):
        return _train_hf(args)
    rank = int(os.environ.get("RANK", "0") or 0)
    quiet = args.json or rank != 0
    if rank != 0:  # under torchrun only rank 0 answers; the others' results are the same run
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
    if args.config_json:
        import json
        from dataclasses import replace

        try:
            cfg = TrainConfig.from_dict(json.loads(args.config_json))
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"--config-json is not a valid training config ({exc})") from None
        cfg = replace(cfg, out=args.out or cfg.out, name=args.name or cfg.name, registry=args.registry or cfg.registry)
        return train(cfg, progress=None if quiet else _print_progress).to_dict()
    if not args.resume and not (args.data or args.sample or args.lora_from):
        raise ValidationError("give --data PATH or --sample NAME (or --resume DIR)")
    if not args.resume and not args.out:
        raise ValidationError("--out DIR is required (the run folder)")
    if args.resume and args.out and os.path.realpath(args.out) != os.path.realpath(args.resume):
        raise ValidationError("--out and --resume name different folders; a resumed run continues in its own folder")
    cfg = TrainConfig(
        data=args.data, sample=args.sample, task=args.task, text_col=args.text_col, label_col=args.label_col,
        tokenizer=args.tokenizer, bpe_vocab=args.bpe_vocab, preset=args.preset, n_layers=args.n_layers,
        n_heads=args.n_heads, n_kv_heads=args.n_kv_heads, d_model=args.d_model, d_ff=args.d_ff,
        context=args.context, dropout=args.dropout, max_steps=args.max_steps, batch_size=args.batch_size,
        grad_accum=args.grad_accum, lr=args.lr, warmup_steps=args.warmup, eval_every=args.eval_every,
        eval_batches=args.eval_batches, early_stop_patience=args.early_stop, checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every, stop_at=args.stop_at, device=args.device, dtype=args.dtype, seed=args.seed,
        compile=args.compile, threads=args.threads, fsdp=args.fsdp, out=args.out, name=args.name, resume=args.resume, registry=args.registry,
        lora_from=args.lora_from, lora_rank=args.rank if args.rank is not None else (8 if args.lora_from else 0), lora_alpha=args.alpha, lora_target=args.target,
    )
    return train(cfg, progress=None if quiet else _print_progress).to_dict()


def _train_hf(args: argparse.Namespace) -> dict:
    """``train --hf-model DIR`` (or ``--resume`` of such a run): engine.lab.hf_train, not the lab trainer."""
    from engine.lab.hf_loop import train_hf
    from engine.lab.hf_train import HFTrainConfig

    given = {"hf_model": args.hf_model, "method": args.method, "target": args.target, "data": args.data,
             "sample": args.sample, "text_col": args.text_col, "prompt_col": args.prompt_col,
             "response_col": args.response_col, "rank": args.rank, "alpha": args.alpha, "context": args.context,
             "max_steps": args.max_steps, "batch_size": args.batch_size, "grad_accum": args.grad_accum, "lr": args.lr,
             "warmup_steps": args.warmup, "eval_every": args.eval_every, "eval_batches": args.eval_batches,
             "checkpoint_every": args.checkpoint_every, "stop_at": args.stop_at, "device": args.device,
             "dtype": args.dtype, "seed": args.seed, "threads": args.threads, "out": args.out, "name": args.name,
             "resume": args.resume, "registry": args.registry}
    defaults = HFTrainConfig()
    cfg = HFTrainConfig(**{k: (getattr(defaults, k) if v is None else v) for k, v in given.items()})
    if args.eval_batches == 10:  # the lab trainer's default; HF runs evaluate on fewer, larger sequences
        cfg = HFTrainConfig.from_dict({**cfg.to_dict(), "eval_batches": defaults.eval_batches})
    res = train_hf(cfg, progress=None if args.json else _print_progress)
    try:  # the run's summary as recorded (method, predicted memory, predicted beside measured step time)
        import json
        from pathlib import Path

        return json.loads((Path(res.run_dir) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return res.to_dict()


def _print_progress(event: dict) -> None:
    if event.get("event") == "eval":
        extra = f" acc {event['val_acc']:.3f} f1 {event['val_f1']:.3f}" if "val_acc" in event else ""
        print(f"step {event['step']}: val loss {event['val_loss']:.4f} ppl {event['val_ppl']:.2f}{extra}",
              file=sys.stderr, flush=True)
    elif event.get("train_loss") is not None:
        rate = f" {event['tokens_per_s']:,.0f} tok/s" if event.get("tokens_per_s") else ""
        print(f"step {event['step']}/{event['max_steps']}: loss {event['train_loss']:.4f}{rate}",
              file=sys.stderr, flush=True)


def _train_human(d: dict) -> str:
    lines = [f"run {d['name']} {d['status']} after {d['steps']} steps ({d['stopped_reason']})",
             f"  params {d['params']:,}, train loss {d['train_loss']}, val loss {d['val_loss']}"]
    if "val_accuracy" in d:
        lines.append(f"  val accuracy {d['val_accuracy']}, macro-F1 {d['val_f1']}")
    if d.get("tokens_per_s"):
        lines.append(f"  {d['tokens_per_s']:,.0f} tokens/s, MFU {d['mfu'] or 0:.1%} ({d['mfu_basis']})")
    lines.append(f"  checkpoint {d['checkpoint']}")
    for s in d.get("samples") or []:
        lines.append("  sample: " + s.replace("\n", "\\n")[:200])
    return "\n".join(lines)


def _calibrate(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("calibrate")
    if not args.preset:
        from engine.errors import ValidationError

        raise ValidationError("calibrate needs --preset NAME (or --serve with --run DIR or --preset NAME)")
    from engine.lab.calibrate import CalibrateInput, calibrate
    from engine.store import Registry

    registry = None if args.no_record else Registry(args.registry)
    return calibrate(CalibrateInput(preset=args.preset, device=args.device, batch_size=args.batch_size,
                                    steps=args.steps, warmup=args.warmup, dtype=args.dtype, compile=args.compile,
                                    context=args.context), registry=registry).to_dict()


def _runs(args: argparse.Namespace) -> dict:
    import json

    from engine.store import Registry

    reg = Registry(args.registry)
    if args.delete:
        from engine.lab.jobs import delete_run

        delete_run(args.delete, registry=reg)
    reg.mark_dead()
    frame = reg.list_runs()
    rows = []
    for rec in frame.to_dict(orient="records"):
        summary = rec.get("summary") or {}
        rows.append({"name": rec["name"], "status": rec["status"], "kind": rec["kind"], "run_dir": rec["run_dir"],
                     "steps": summary.get("steps"), "val_loss": summary.get("val_loss"),
                     "tokens_per_s": summary.get("tokens_per_s"), "error": rec["error"],
                     "created": rec["created"], "ended": rec["ended"] if rec["ended"] == rec["ended"] else None,
                     "shipped": rec["shipped"]})
    return {"runs": json.loads(json.dumps(rows, default=str))}


def _runs_human(d: dict) -> str:
    if not d["runs"]:
        return "no runs yet"
    return "\n".join(f"{r['name']:<24} {r['status']:<9} steps {r['steps'] or 0:<6} val {r['val_loss']}  {r['run_dir']}"
                     + (f"  ({r['error']})" if r["error"] else "") + ("  (shipped demo)" if r.get("shipped") else "")
                     for r in d["runs"])
