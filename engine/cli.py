"""The one command line: ``preflight ...`` and ``python -m engine ...``.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. Bad arguments exit
with code 2 and one line on stderr naming the bad value and what is allowed; nothing prints a
traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from engine import __version__, catalog, money
from engine.estimate import models as model_specs
from engine.errors import RunError, ValidationError
from engine.estimate.architecture import ModelSpec
from engine.estimate.hf_config import params_from_hf_config
from engine.estimate.dtypes import KV_DTYPES, WEIGHT_DTYPES
from engine.estimate.memory import ATTENTION, OPTIMIZER_STATE_BYTES, RECOMPUTE, MemoryInput, estimate_memory
from engine.estimate.scaling import DEFAULT_FIT, FITS, OptimalInput, estimate_optimal
from engine.estimate import sensitivity
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import PRECISIONS, TrainingInput, estimate_training
from engine.cliargs import EXIT_FAILED, EXIT_USAGE, Parser, currency_args, currency_from_args, finite, quantity, whole
from engine.units import format_bytes



PRICE_HELP = ("price per GPU-hour in the --currency (default USD): a founder in China types yuan with "
              "--currency CNY, converted to USD at --exchange-rate (default: the catalog's dated rate); "
              "default: the catalog's USD price")


def _lower(text: str) -> str:
    return text.strip().lower()


def _model_args(parser: argparse.ArgumentParser, models: list[str]) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", type=_lower, choices=models, metavar="NAME", help=f"preset: {', '.join(models)}")
    who.add_argument("--model-file", metavar="PATH", help="a custom architecture (TOML or JSON, fields as in models.toml)")
    who.add_argument("--hf-config", metavar="PATH", help=model_specs.HF_CONFIG_HELP)


def _model(args: argparse.Namespace) -> str | ModelSpec | None:
    """The preset id, or the architecture read from --model-file or --hf-config (a bad file is a
    ValidationError)."""
    return model_specs.model_from_args(args.model, args.model_file, getattr(args, "hf_config", None))


# Commands that live next to their capability. Each module exposes ``register(sub, common)``, which adds
# its subparsers and sets ``handler`` (args -> dict) and optionally ``human`` (dict -> str) as parser
# defaults. The modules import nothing heavy at import time (torch, pyarrow load inside the handler),
# so ``preflight models`` stays instant.
COMMAND_MODULES = ("engine.datacheck.cli", "engine.lab.cli", "engine.lab.tune_cli", "engine.readiness.cli",
                   "engine.infer.cli", "engine.estimate.apis_cli")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")
    currency_args(common)

    parser = Parser(prog="preflight", description="Preflight: GPU cost & compute estimates, data checks and a model lab.")
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    mp = sub.add_parser("models", parents=[common], help="list the model presets, or read one config.json")
    mp.add_argument("--hf-config", metavar="PATH",
                    help="print params_total, params_active and the architecture (spec) read from this config.json")
    sub.add_parser("gpus", parents=[common], help="list the GPU catalog")

    est = sub.add_parser("estimate", help="training, memory, serving and compute-optimal estimates")
    est_sub = est.add_subparsers(dest="what", required=True, parser_class=Parser)

    models = sorted(model_specs.model_ids())  # the catalog and the models saved into the workspace
    gpus = list(catalog.gpus())

    t = est_sub.add_parser("train", parents=[common], help="training FLOPs, GPU-hours, wall clock, dollars, energy")
    who = t.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", type=_lower, choices=models, metavar="NAME", help=f"preset: {', '.join(models)}")
    who.add_argument("--params", type=quantity("params"), metavar="N", help="parameter count, e.g. 7e9 or 7B")
    who.add_argument("--model-file", metavar="PATH", help="a custom architecture (TOML or JSON, fields as in models.toml)")
    who.add_argument("--hf-config", metavar="PATH", help=model_specs.HF_CONFIG_HELP)
    t.add_argument("--tokens", type=quantity("tokens"), required=True, metavar="T", help="training tokens, e.g. 2T")
    t.add_argument("--gpu", type=_lower, choices=gpus, required=True, metavar="ID", help=f"one of: {', '.join(gpus)}")
    t.add_argument("--gpus", type=whole("gpus"), default=1, metavar="N", help="number of GPUs (default 1)")
    t.add_argument("--seq-len", type=whole("seq-len"), metavar="S", help="sequence length (default: preset context)")
    how = t.add_mutually_exclusive_group()
    how.add_argument("--mfu", type=finite("mfu"), metavar="F", help="model FLOPs utilization 0-1 (default: GPU's typical)")
    how.add_argument("--achieved-tflops", type=finite("achieved-tflops"), metavar="X", help="hardware TFLOP/s per GPU actually sustained")
    how.add_argument("--gpu-hours", type=quantity("gpu-hours"), metavar="H", help="published GPU-hours: report the implied MFU")
    t.add_argument("--price", type=finite("price"), metavar="P", help=PRICE_HELP)
    t.add_argument("--precision", type=_lower, choices=PRECISIONS, default="bf16")
    t.add_argument("--recompute", type=_lower, choices=RECOMPUTE, default="none", help="activation recompute (adds hardware FLOPs)")
    t.add_argument("--pue", type=finite("pue"), metavar="X", help="data-centre PUE (default 1.2)")
    t.add_argument("--grid", type=finite("grid"), metavar="KG", help="grid intensity, kg CO2e per kWh (default 0.37)")
    t.add_argument("--by-gpu", action="store_true", help="add 'by_gpu': the same run on every catalog GPU")

    m = est_sub.add_parser("memory", parents=[common], help="memory per GPU for training or inference")
    _model_args(m, models)
    m.add_argument("--mode", type=_lower, choices=("train", "infer"), default="train")
    m.add_argument("--batch", type=whole("batch"), default=1, metavar="B", help="micro-batch per GPU (train) or concurrent sequences (infer)")
    m.add_argument("--seq-len", type=whole("seq-len"), metavar="S", help="tokens per sequence (default: preset context)")
    m.add_argument("--dtype", type=_lower, choices=WEIGHT_DTYPES, default="bf16")
    m.add_argument("--kv-dtype", type=_lower, choices=KV_DTYPES, help="KV-cache dtype (default: follows --dtype)")
    m.add_argument("--dp", type=whole("dp"), default=1, metavar="N", help="data-parallel degree")
    m.add_argument("--zero", type=whole("zero"), default=0, choices=(0, 1, 2, 3), help="ZeRO stage")
    m.add_argument("--tp", type=whole("tp"), default=1, metavar="N", help="tensor-parallel degree")
    m.add_argument("--pp", type=whole("pp"), default=1, metavar="N", help="pipeline-parallel degree")
    m.add_argument("--recompute", type=_lower, choices=RECOMPUTE, default="none")
    m.add_argument("--no-sequence-parallel", action="store_true", help="tensor parallelism without sequence parallelism")
    m.add_argument("--optimizer", type=_lower, choices=tuple(OPTIMIZER_STATE_BYTES), default="adamw")
    m.add_argument("--microbatches", type=whole("microbatches"), metavar="M", help="pipeline micro-batches in flight (default: pp)")
    m.add_argument("--gpu", type=_lower, choices=gpus, metavar="ID", help="say whether it fits this GPU")
    m.add_argument("--overhead-gib", type=finite("overhead-gib"), metavar="GIB", help="CUDA context and workspaces, GiB (default 1)")
    m.add_argument("--attention", type=_lower, choices=ATTENTION, default="flash",
                   help="flash keeps no attention scores; eager stores them (Korthikanti et al.'s 5·a·s²·b)")
    m.add_argument("--prefill-chunk-tokens", type=whole("prefill-chunk-tokens"), metavar="T",
                   help="inference: tokens prefilled per step (default 8192)")
    m.add_argument("--by-plan", action="store_true", help="add 'by_plan': the breakdown under standard parallelism plans")

    s = est_sub.add_parser("serve", parents=[common], help="serving latency, throughput, GPUs needed and $ per million tokens")
    _model_args(s, models)
    s.add_argument("--gpu", type=_lower, choices=gpus, required=True, metavar="ID", help=f"one of: {', '.join(gpus)}")
    s.add_argument("--gpus", type=whole("gpus"), default=1, metavar="N", help="GPUs per replica (tensor parallel)")
    s.add_argument("--dtype", type=_lower, choices=WEIGHT_DTYPES, default="bf16")
    s.add_argument("--kv-dtype", type=_lower, choices=KV_DTYPES)
    s.add_argument("--prompt-tokens", type=whole("prompt-tokens"), required=True, metavar="P")
    s.add_argument("--output-tokens", type=whole("output-tokens"), required=True, metavar="O")
    s.add_argument("--concurrency", type=whole("concurrency"), metavar="C",
                   help="concurrent sequences (default: the smaller of max_concurrency, what the memory holds, "
                        "and --max-num-seqs)")
    s.add_argument("--requests-per-s", type=finite("requests-per-s"), default=1.0, metavar="R", help="target load (default 1)")
    s.add_argument("--price", type=finite("price"), metavar="P", help=PRICE_HELP)
    s.add_argument("--prefill-efficiency", type=finite("prefill-efficiency"), metavar="F")
    s.add_argument("--decode-efficiency", type=finite("decode-efficiency"), metavar="F")
    s.add_argument("--overhead-gib", type=finite("overhead-gib"), metavar="GIB", help="per-GPU fixed overhead, GiB (default 1)")
    s.add_argument("--max-num-seqs", "--max-batch", dest="max_batch", type=whole("max-num-seqs"), metavar="N",
                   help="scheduler limit on concurrent sequences, like vLLM's max_num_seqs (default 256); "
                        "reported as max_batch_sequences, apart from the memory bound max_concurrency")
    s.add_argument("--prefill-chunk-tokens", type=whole("prefill-chunk-tokens"), metavar="T", help="default 8192")
    s.add_argument("--layer-overhead-us", type=finite("layer-overhead-us"), metavar="US",
                   help="fixed latency per layer per forward pass (default 20)")
    s.add_argument("--allreduce-us", type=finite("allreduce-us"), metavar="US",
                   help="latency of one tensor-parallel all-reduce, two per layer (default 15)")
    s.add_argument("--allreduce-bandwidth-gbs", type=finite("allreduce-bandwidth-gbs"), metavar="GBS",
                   help="tensor-parallel all-reduce bus bandwidth per GPU, GB/s (default 360; 0 leaves the term out)")
    s.add_argument("--sequence-step-us", type=finite("sequence-step-us"), metavar="US",
                   help="host work per running sequence per decode step, microseconds (default 5)")
    s.add_argument("--request-overhead-ms", type=finite("request-overhead-ms"), metavar="MS",
                   help="fixed time to first token outside the forward passes, milliseconds (default 10)")
    s.add_argument("--by-concurrency", action="store_true", help="add 'by_concurrency': latency, throughput, $ vs batch")
    s.add_argument("--by-gpu", action="store_true", help="add 'by_gpu': each GPU type in the smallest group that holds the model")

    o = est_sub.add_parser("optimal", parents=[common], help="compute-optimal parameters and tokens (Chinchilla)")
    budget = o.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=quantity("flops"), metavar="C", help="compute budget in FLOPs, e.g. 5.76e23")
    budget.add_argument("--budget-usd", type=quantity("budget-usd"), metavar="B", help="budget in US dollars (needs --gpu)")
    budget.add_argument("--budget", type=quantity("budget"), metavar="B",
                        help="budget in the --currency (default USD), e.g. 7M with --currency CNY (needs --gpu)")
    o.add_argument("--gpu", type=_lower, choices=gpus, metavar="ID")
    o.add_argument("--mfu", type=finite("mfu"), metavar="F")
    o.add_argument("--price", type=finite("price"), metavar="P", help=PRICE_HELP)
    o.add_argument("--fit", type=_lower, choices=tuple(FITS), default=DEFAULT_FIT)
    o.add_argument("--frontier", action="store_true", help="add 'frontier': N_opt, D_opt and loss from 1e18 to 1e26 FLOPs")

    importlib.import_module("engine.estimate.finetune_cli").register(est_sub, common, models, gpus)

    _breakeven_parser(est_sub, common, models, gpus)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def _breakeven_parser(est_sub: argparse._SubParsersAction, common: argparse.ArgumentParser, models: list[str],
                      gpus: list[str]) -> None:
    """``estimate breakeven``: its model arguments are the shared ``_model_args`` (as ``serve``'s)."""
    b = est_sub.add_parser("breakeven", parents=[common],
                           help="self-host or API: monthly cost each way at your load, break-even requests/s")
    _model_args(b, models)
    b.add_argument("--gpu", type=_lower, choices=gpus, required=True, metavar="ID", help=f"one of: {', '.join(gpus)}")
    b.add_argument("--gpus", type=whole("gpus"), metavar="N",
                   help="GPUs per replica (default: the smallest tensor-parallel group that holds the model)")
    b.add_argument("--dtype", type=_lower, choices=WEIGHT_DTYPES, default="bf16")
    b.add_argument("--prompt-tokens", type=whole("prompt-tokens"), required=True, metavar="P")
    b.add_argument("--output-tokens", type=whole("output-tokens"), required=True, metavar="O")
    b.add_argument("--requests-per-s", type=finite("requests-per-s"), required=True, metavar="R", help="today's load")
    b.add_argument("--api", action="append", required=True, metavar="ID",
                   help="an API offer to compare with, 'provider/model' (repeat for more; `preflight apis` lists them)")
    b.add_argument("--price", type=finite("price"), metavar="P", help=PRICE_HELP)
    b.add_argument("--p95-target-s", type=finite("p95-target-s"), metavar="S", help="latency target to check")
    b.add_argument("--monthly-growth", type=finite("monthly-growth"), metavar="G",
                   help="a fraction per month (0.1 = 10%%): adds 'month_12', the answer at R × (1 + G)^12")
    b.add_argument("--cached-fraction", type=finite("cached-fraction"), default=0.0, metavar="F",
                   help="share of prompt tokens billed at the cached-input price where one is listed (default 0)")
    b.add_argument("--curve", action="store_true", help="add 'curve': monthly cost of each option vs load")
    importlib.import_module("engine.estimate.apis_cli").api_file_arg(b)
    b.set_defaults(human=lambda result: importlib.import_module("engine.estimate.breakeven").human(result))


def _price(args: argparse.Namespace, value: float | None) -> float | None:
    """A price or budget typed in the chosen currency, in USD for the engine."""
    return None if value is None else args.money.to_usd(value)


def _run(args: argparse.Namespace) -> dict:
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    if args.command == "models" and args.hf_config:
        return params_from_hf_config(args.hf_config, **model_specs.hf_config_names(args.hf_config))
    if args.command == "models":
        return {"models": [_model_row(spec) for spec in model_specs.models().values()], "version": catalog.catalog_versions()["models"]}
    if args.command == "gpus":
        return {"gpus": [asdict(gpu) for gpu in catalog.gpus().values()], "version": catalog.catalog_versions()["gpus"]}
    if args.what == "train":
        train = TrainingInput(
            model=_model(args), params=args.params, tokens=args.tokens, gpu=args.gpu, gpus=args.gpus,
            seq_len=args.seq_len, mfu=args.mfu, achieved_tflops=args.achieved_tflops, gpu_hours=args.gpu_hours,
            price_usd_per_hour=_price(args, args.price), precision=args.precision, recompute=args.recompute,
            pue=args.pue, grid_kg_per_kwh=args.grid,
        )
        out = estimate_training(train).to_dict()
        if args.by_gpu:
            out["by_gpu"] = _records(sensitivity.training_by_gpu(train))
        return out
    if args.what == "memory":
        memory = MemoryInput(
            model=_model(args), mode=args.mode, batch=args.batch, seq_len=args.seq_len, dtype=args.dtype,
            kv_dtype=args.kv_dtype, dp=args.dp, zero=args.zero, tp=args.tp, pp=args.pp,
            recompute=args.recompute, sequence_parallel=not args.no_sequence_parallel,
            optimizer=args.optimizer, microbatches=args.microbatches, gpu=args.gpu, overhead_gib=args.overhead_gib,
            attention=args.attention, prefill_chunk_tokens=args.prefill_chunk_tokens,
        )
        out = estimate_memory(memory).to_dict()
        if args.by_plan:
            out["by_plan"] = _records(sensitivity.memory_by_plan(memory))
        return out
    if args.what == "serve":
        serve = ServeInput(
            model=_model(args), gpu=args.gpu, gpus=args.gpus, dtype=args.dtype, kv_dtype=args.kv_dtype,
            prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens, concurrency=args.concurrency,
            requests_per_s=args.requests_per_s, price_usd_per_hour=_price(args, args.price),
            prefill_efficiency=args.prefill_efficiency, decode_efficiency=args.decode_efficiency,
            overhead_gib=args.overhead_gib, max_batch=args.max_batch, prefill_chunk_tokens=args.prefill_chunk_tokens,
            layer_overhead_us=args.layer_overhead_us, allreduce_us=args.allreduce_us,
            allreduce_bandwidth_gbs=args.allreduce_bandwidth_gbs, sequence_step_us=args.sequence_step_us,
            request_overhead_ms=args.request_overhead_ms,
        )
        out = estimate_serving(serve).to_dict()
        if args.by_concurrency:
            out["by_concurrency"] = _records(sensitivity.serving_by_concurrency(serve))
        if args.by_gpu:
            out["by_gpu"] = _records(sensitivity.serving_by_gpu(serve))
        return out
    if args.what == "breakeven":
        from engine.estimate.apis_cli import extra_offers
        from engine.estimate.breakeven import BreakevenInput, estimate_breakeven

        out = estimate_breakeven(BreakevenInput(
            model=_model(args), gpu=args.gpu, gpus=args.gpus, dtype=args.dtype, prompt_tokens=args.prompt_tokens,
            output_tokens=args.output_tokens, requests_per_s=args.requests_per_s, apis=tuple(args.api),
            price_usd_per_hour=_price(args, args.price), extra_offers=extra_offers(args),
            p95_target_s=args.p95_target_s, monthly_growth=args.monthly_growth, cached_fraction=args.cached_fraction,
            rate=args.money if args.exchange_rate is not None else None))
        if not args.curve:
            out.pop("curve")
        return out
    if args.what == "optimal":
        out = estimate_optimal(OptimalInput(
            flops=args.flops, budget_usd=args.budget_usd if args.budget is None else _price(args, args.budget),
            gpu=args.gpu, mfu=args.mfu, price_usd_per_hour=_price(args, args.price), fit=args.fit,
        )).to_dict()
        if args.frontier:
            out["frontier"] = _records(sensitivity.loss_frontier(args.fit))
        return out
    raise AssertionError(f"unhandled command {args.command}")  # argparse's choices make this unreachable


def _records(table) -> list[dict]:
    """A sweep DataFrame as JSON-ready rows (numpy scalars become Python numbers)."""
    return json.loads(table.to_json(orient="records"))


def _model_row(spec: catalog.ModelSpec) -> dict:
    row = spec.summary()
    return {k: row[k] for k in (
        "id", "name", "params_total", "params_active", "n_layers", "d_model", "n_heads", "n_kv_heads",
        "d_ff", "ffn", "vocab_size", "context", "attention", "n_experts", "top_k", "source", "date",
    )}


def _human(command: str, result: dict) -> str:
    lines = []
    cur = money.get_currency(result["currency"]["code"], result["currency"]["per_usd"]) if "currency" in result else None
    if command in ("models", "gpus") and command in result:
        for row in result[command]:
            if command == "models":
                lines.append(f"{row['id']:<16} {row['params_total'] / 1e9:>9.2f}B  {row['name']}")
            else:
                price = money.format_money(row["price_usd_per_hour"], cur, compact=False)
                lines.append(f"{row['id']:<11} {row['bf16_tflops']:>7.0f} TFLOP/s bf16  {row['memory_gib']:>5.0f} GiB  "
                             f"{price}/h  {row['platform']:<4}  {row['name']}")
        if cur is not None:
            lines.append(_rate_line(result["currency"]))
        return "\n".join(lines)
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key == "currency" and isinstance(value, dict):
            lines.append(f"{key:<{width}}  {_rate_line(value)}")
            continue
        amount_in = _money_key(key, cur)
        if amount_in is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"{key:<{width}}  {money.format_amount(value, amount_in, compact=False)}")
            continue
        if isinstance(value, list):  # a sweep table: one compact line per row
            lines.append(f"{key}:")
            lines.extend("  " + ", ".join(f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                         for row in value)
            continue
        if isinstance(value, float):
            shown = format_bytes(value) if key.endswith("_bytes") or key == "total_bytes_per_gpu" else f"{value:,.6g}"
        else:
            shown = str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def _rate_line(block: dict) -> str:
    return f"{block['code']}: {block['per_usd']:g} per USD ({block['date']}; {block['source']})"


def _money_key(key: str, cur: money.Currency | None) -> money.Currency | None:
    """The currency a field's number is in: USD for ``*_usd``, the chosen one for its twin."""
    parts = key.split("_")
    if "usd" in parts:
        return money.get_currency()
    if cur is not None and cur.code.lower() in parts:
        return cur
    return None


def _localize(result: dict, currency: money.Currency) -> dict:
    """``--currency``: every ``*_usd`` number gets its converted twin and the result a ``currency``
    block; the data-check estimator sentence (in check and readiness) is rebuilt in the currency."""
    out = money.convert_result(result, currency)

    def sentences(value) -> None:
        if isinstance(value, dict):
            if {"sentence", "cost_usd", "gpu_hours", "tokens", "params", "flops"} <= value.keys():
                from engine.datacheck.runner import estimate_sentence

                value["sentence"] = estimate_sentence(value, currency)
            for item in value.values():
                sentences(item)
        elif isinstance(value, list):
            for item in value:
                sentences(item)

    sentences(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.money = currency_from_args(args)
        result = _run(args)
        if args.currency is not None or args.exchange_rate is not None:
            result = _localize(result, args.money)
    except ValidationError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        if args.json and exc.result is not None:
            print(json.dumps(exc.result, allow_nan=False))
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    human = getattr(args, "human", None) or (lambda result: _human(args.command, result))
    print(json.dumps(result, allow_nan=False) if args.json else human(result))
    return 0


def entry() -> None:
    """The console script and ``python -m engine``: :func:`main`, then exit without interpreter
    teardown once the output is flushed. pyarrow's I/O threads can still be finishing a read-ahead
    after a refused file, and tearing the interpreter down under them aborts the process
    ("terminate called without an active exception") instead of exiting with the code we chose."""
    import os

    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `preflight models | head`: the reader left; not an error of ours
        code = 0
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    entry()
