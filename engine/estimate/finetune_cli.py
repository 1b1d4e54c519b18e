"""``preflight estimate finetune``: registered into the ``estimate`` group by engine/cli.py.

    preflight estimate finetune --model llama-3-8b --method qlora --tokens 40M --gpu rtx-4090 \\
        --gradient-checkpointing --by-gpu --json
"""

from __future__ import annotations

import argparse
import json

from engine.cliargs import finite, quantity, whole


def register(est_sub: argparse._SubParsersAction, common: argparse.ArgumentParser, models: list[str],
             gpus: list[str]) -> None:
    from engine.estimate.finetune import ADAPTER_OPTIMIZER_BYTES, BASE_DTYPES, METHODS, TARGETS
    from engine.estimate.finetune_stacks import stack_ids
    from engine.estimate.models import HF_CONFIG_HELP

    lower = lambda text: text.strip().lower()  # noqa: E731
    f = est_sub.add_parser("finetune", parents=[common],
                           help="full, LoRA and QLoRA fine-tuning: memory per GPU, fit, time and cost")
    who = f.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", type=lower, choices=models, metavar="NAME", help=f"preset: {', '.join(models)}")
    who.add_argument("--model-file", metavar="PATH", help="a custom architecture (TOML or JSON, fields as in models.toml)")
    who.add_argument("--hf-config", metavar="PATH", help=HF_CONFIG_HELP)
    f.add_argument("--method", type=lower, choices=METHODS, required=True)
    f.add_argument("--tokens", type=quantity("tokens"), required=True, metavar="T", help="tokens in your data, e.g. 40M")
    f.add_argument("--epochs", type=finite("epochs"), default=1.0, metavar="E", help="passes over the data (default 1)")
    f.add_argument("--gpu", type=lower, choices=gpus, required=True, metavar="ID", help=f"one of: {', '.join(gpus)}")
    f.add_argument("--gpus", type=whole("gpus"), default=1, metavar="N", help="number of GPUs (default 1)")
    f.add_argument("--rank", type=whole("rank"), default=16, metavar="R", help="LoRA rank (default 16)")
    f.add_argument("--alpha", type=finite("alpha"), metavar="A", help="LoRA alpha (default 2 × rank; no effect on cost)")
    f.add_argument("--target", type=lower, choices=TARGETS, default="all-linear",
                   help="layers that get adapters (default all-linear, as the QLoRA paper)")
    f.add_argument("--seq-len", type=whole("seq-len"), metavar="S", help="tokens per sequence (default min(context, 2048))")
    f.add_argument("--batch", type=whole("batch"), default=1, metavar="B", help="micro-batch per GPU (default 1)")
    f.add_argument("--gradient-checkpointing", action="store_true", help="keep only each layer's input; +1 forward pass")
    how = f.add_mutually_exclusive_group()
    how.add_argument("--mfu", type=finite("mfu"), metavar="F", help="model FLOPs utilization 0-1 (default: GPU's typical)")
    how.add_argument("--measured-mfu", action="store_true", help="the model lab's latest calibrated MFU")
    f.add_argument("--price", type=finite("price"), metavar="USD", help="USD per GPU-hour (default: catalog)")
    f.add_argument("--dtype", type=lower, choices=BASE_DTYPES, default="bf16", help="weights of full / LoRA (QLoRA: NF4)")
    f.add_argument("--optimizer", type=lower, metavar="NAME",
                   help=f"adapters: {', '.join(ADAPTER_OPTIMIZER_BYTES)}; full: adamw, adamw-8bit, sgd (default: the stack's)")
    f.add_argument("--zero", type=whole("zero"), default=0, choices=(0, 1, 2, 3), help="ZeRO / FSDP sharding stage")
    f.add_argument("--tp", type=whole("tp"), default=1, metavar="N", help="tensor parallel (full only)")
    f.add_argument("--pp", type=whole("pp"), default=1, metavar="N", help="pipeline parallel (full only)")
    f.add_argument("--overhead-gib", type=finite("overhead-gib"), metavar="GIB", help="per-GPU fixed overhead (default 1)")
    f.add_argument("--stack", type=lower, default="hf", metavar="NAME",
                   help=f"software stack: {', '.join(stack_ids())} (default hf; engine/catalog/stacks.toml)")
    f.add_argument("--loss-chunks", type=whole("loss-chunks"), metavar="N", help="chunks the loss is computed in")
    f.add_argument("--logits-bytes", type=finite("logits-bytes"), metavar="B",
                   help="bytes per token x vocabulary entry the logits and loss hold (overrides the stack's)")
    off = f.add_mutually_exclusive_group()
    off.add_argument("--offload-checkpoints", dest="offload", action="store_const", const=True,
                     help="activation checkpoints in CPU memory (needs --host-memory-gib)")
    off.add_argument("--no-offload-checkpoints", dest="offload", action="store_const", const=False)
    f.add_argument("--host-memory-gib", type=finite("host-memory-gib"), metavar="GIB",
                   help="CPU memory for offloaded checkpoints and paged optimizer state")
    f.add_argument("--cuda-context-gib", type=finite("cuda-context-gib"), metavar="GIB", help="CUDA context per GPU")
    f.add_argument("--fragmentation", type=finite("fragmentation"), metavar="F", help="allocator fragmentation, 0-1")
    f.add_argument("--hfu", type=finite("hfu"), metavar="F",
                   help="hardware FLOPs utilization 0-1 (instead of --mfu; default: the stack's)")
    f.add_argument("--dequant-efficiency", type=finite("dequant-efficiency"), metavar="F",
                   help="QLoRA: fraction of memory bandwidth the NF4 dequantization reaches")
    f.add_argument("--by-gpu", action="store_true",
                   help="add 'by_gpu' (every GPU type × full, LoRA, QLoRA at its smallest fitting count) and 'cheapest'")
    f.set_defaults(handler=_finetune, human=_human)


def _finetune(args: argparse.Namespace) -> dict:
    from engine.estimate import models as model_specs
    from engine.estimate import sensitivity
    from engine.estimate.finetune import FinetuneInput, estimate_finetune

    model = model_specs.model_from_args(args.model, args.model_file, args.hf_config)
    inp = FinetuneInput(
        model=model, method=args.method, tokens=args.tokens, epochs=args.epochs, gpu=args.gpu, gpus=args.gpus,
        rank=args.rank, alpha=args.alpha, target=args.target, seq_len=args.seq_len, batch=args.batch,
        gradient_checkpointing=args.gradient_checkpointing, mfu=args.mfu, measured_mfu=args.measured_mfu,
        price_usd_per_hour=args.price, dtype=args.dtype, optimizer=args.optimizer, zero=args.zero, tp=args.tp,
        pp=args.pp, overhead_gib=args.overhead_gib, stack=args.stack, loss_chunks=args.loss_chunks,
        logits_bytes=args.logits_bytes, offload_checkpoints=args.offload, host_memory_gib=args.host_memory_gib,
        cuda_context_gib=args.cuda_context_gib, fragmentation=args.fragmentation, hfu=args.hfu,
        dequant_efficiency=args.dequant_efficiency,
    )
    out = estimate_finetune(inp).to_dict()
    if args.by_gpu:
        table = sensitivity.finetune_by_gpu(inp)
        out["by_gpu"] = json.loads(table.to_json(orient="records"))
        out["cheapest"] = json.loads(sensitivity.cheapest_fits(table).to_json(orient="records"))
    return out


def _human(d: dict) -> str:
    from engine.units import format_bytes

    gib = lambda key: format_bytes(d[key])  # noqa: E731
    lines = [
        f"{d['method']} fine-tune of {d['model']}: {d['trainable_params']:,} trainable of {d['total_params']:,} parameters",
        f"memory per GPU {gib('total_bytes_per_gpu')} (+{gib('overhead_bytes')} overhead) of {gib('gpu_memory_bytes')} "
        f"on {d['gpu']}: {'fits' if d['fits'] else 'does NOT fit'} ({d['parallelism']})",
        f"  weights {gib('weights_bytes')}, adapters {gib('adapter_bytes')}, gradients {gib('gradients_bytes')}, "
        f"optimizer {gib('optimizer_bytes')}, activations {gib('activations_bytes')}, checkpoints "
        f"{gib('checkpoint_bytes')}, logits and loss {gib('logits_bytes')}; host {gib('host_bytes')}",
        f"stack {d['stack']}: the longest sequence that fits at batch {d['batch']} is {d['max_seq_len_fits']:,} tokens; "
        f"{d['tokens_per_second']:,.0f} tokens/s per GPU",
        f"{d['trained_tokens']:,.0f} tokens: {d['flops_total']:.3g} FLOPs, {d['gpu_hours']:,.2f} GPU-hours, "
        f"{d['wall_clock_hours']:,.2f} h on {d['gpus']} GPU(s), ${d['cost_usd']:,.2f} at MFU {d['mfu']:.0%}",
    ]
    lines += [f"  - {note}" for note in d["assumptions"]]
    for row in d.get("cheapest") or []:
        lines.append(f"cheapest {row['method']}: {row['gpus']} x {row['gpu']}, ${row['cost_usd']:,.2f}, "
                     f"{row['wall_clock_hours']:,.2f} h")
    return "\n".join(lines)
