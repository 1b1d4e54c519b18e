"""Sensitivity tables: one estimate repeated over a grid of GPUs, plans, sizes or budgets.

Each function returns a pandas DataFrame (one row per point) that pages chart and offer as CSV, and
that the CLI and tests can read the same way. All rows come from the same engine functions as single
estimates, so a table never disagrees with a headline number.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from engine.catalog import gpus as gpu_catalog
from engine.estimate.dtypes import compute_precision, weight_dtype
from engine.estimate.models import resolve_model
from engine.errors import ValidationError
from engine.estimate.finetune import MAX_GPUS, METHODS, FinetuneInput, estimate_finetune, smallest_fit
from engine.estimate.finetune_stacks import stack_ids, stack_methods
from engine.estimate.memory import MemoryInput, estimate_memory
from engine.estimate.scaling import get_fit
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training


TRAINING_BY_GPU_COLUMNS = ["gpu", "name", "gpu_hours", "wall_clock_days", "cost_usd", "energy_kwh", "co2_kg", "mfu",
                           "price_usd_per_hour"]
MEMORY_BY_PLAN_COLUMNS = ["plan", "gpus", "weights", "gradients", "optimizer", "activations", "kv_cache", "overhead",
                          "total", "fits"]
SERVING_BY_GPU_COLUMNS = ["gpu", "gpus_per_replica", "cost_per_million_output_tokens_usd",
                          "cost_per_million_input_tokens_usd", "time_per_output_token_ms", "prefill_ms",
                          "decode_tokens_per_s", "concurrency", "gpus_needed", "price_usd_per_hour"]


def training_by_gpu(inp: TrainingInput, gpu_ids: list[str] | None = None) -> pd.DataFrame:
    """The same run on each GPU type: cost, wall clock and energy side by side. An explicit MFU or
    achieved TFLOP/s applies to every GPU; otherwise each GPU uses its own typical MFU."""
    chosen = inp.gpu if isinstance(inp.gpu, str) else inp.gpu.id
    if inp.gpu_hours is not None:  # a published run: carry its implied MFU to the other GPUs
        inp = replace(inp, mfu=estimate_training(inp).mfu, gpu_hours=None)
    rows = []
    for gpu_id in gpu_ids or list(gpu_catalog()):
        gpu = gpu_catalog()[gpu_id]
        if (inp.precision == "fp8" and gpu.fp8_tflops <= 0) or gpu.peak_flops(inp.precision) <= 0:
            continue  # no FP8 units, or no published rate at this precision (the Ascend's fp32)
        if inp.achieved_tflops is not None and inp.achieved_tflops * 1e12 > gpu.peak_flops(inp.precision):
            continue  # this GPU cannot sustain that throughput
        price = inp.price_usd_per_hour if gpu_id == chosen else None  # others: catalog price
        est = estimate_training(replace(inp, gpu=gpu_id, price_usd_per_hour=price))
        rows.append({
            "gpu": gpu_id, "name": gpu.name, "gpu_hours": est.gpu_hours, "wall_clock_days": est.wall_clock_days,
            "cost_usd": est.cost_usd, "energy_kwh": est.energy_kwh, "co2_kg": est.co2_kg, "mfu": est.mfu,
            "price_usd_per_hour": est.price_usd_per_hour,
        })
    return pd.DataFrame(rows, columns=TRAINING_BY_GPU_COLUMNS)


DEFAULT_PLANS: tuple[dict, ...] = (
    {"plan": "DP only", "zero": 0},
    {"plan": "ZeRO-1", "zero": 1},
    {"plan": "ZeRO-2", "zero": 2},
    {"plan": "ZeRO-3", "zero": 3},
    {"plan": "ZeRO-3 + full recompute", "zero": 3, "recompute": "full"},
    {"plan": "TP=8 + SP", "tp": 8},
    {"plan": "TP=8 + PP=4", "tp": 8, "pp": 4},
)


def memory_by_plan(base: MemoryInput, plans: tuple[dict, ...] = DEFAULT_PLANS) -> pd.DataFrame:
    """Per-GPU memory by component for several parallelism plans of the same model and batch.
    Plans that do not apply to the model (tp above its heads, pp above its layers) are skipped."""
    rows = []
    for plan in plans:
        changes = {k: v for k, v in plan.items() if k != "plan"}
        try:
            est = estimate_memory(replace(base, **changes))
        except ValidationError:
            continue
        rows.append({
            "plan": plan["plan"], "gpus": est.gpus, "weights": est.weights_bytes,
            "gradients": est.gradients_bytes, "optimizer": est.optimizer_bytes,
            "activations": est.activations_bytes, "kv_cache": est.kv_cache_bytes,
            "overhead": est.overhead_bytes, "total": est.total_bytes_per_gpu + est.overhead_bytes, "fits": est.fits,
        })
    return pd.DataFrame(rows, columns=MEMORY_BY_PLAN_COLUMNS)


def cost_by_size(inp: TrainingInput, params: list[float], tokens_per_param: list[float]) -> pd.DataFrame:
    """Training cost over model sizes (bare parameter counts, 6·N·D) at several tokens-per-parameter
    ratios (20 ≈ Chinchilla-optimal, Hoffmann et al. 2022; far more for inference-heavy models)."""
    rows = []
    for ratio in tokens_per_param:
        for n in params:
            est = estimate_training(replace(inp, model=None, params=n, tokens=n * ratio, seq_len=None, gpu_hours=None))
            rows.append({"params": n, "tokens_per_param": ratio, "tokens": n * ratio,
                         "cost_usd": est.cost_usd, "gpu_hours": est.gpu_hours, "wall_clock_days": est.wall_clock_days})
    return pd.DataFrame(rows)


def loss_frontier(fit: str, flops_low: float = 1e18, flops_high: float = 1e26, points: int = 41) -> pd.DataFrame:
    """Compute-optimal frontier of the Chinchilla loss: N_opt, D_opt and L at each budget."""
    f = get_fit(fit)
    rows = []
    for c in np.logspace(np.log10(flops_low), np.log10(flops_high), points):
        n, d = f.optimal(c)
        rows.append({"flops": c, "params": n, "tokens": d, "loss": f.loss(n, d)})
    return pd.DataFrame(rows)


def loss_iso_params(fit: str, params: list[float], flops_low: float = 1e18, flops_high: float = 1e26,
                    points: int = 41) -> pd.DataFrame:
    """Loss against compute for fixed model sizes (D = C / 6N): the curves the frontier envelops."""
    f = get_fit(fit)
    rows = []
    for n in params:
        for c in np.logspace(np.log10(flops_low), np.log10(flops_high), points):
            d = c / (6.0 * n)
            if d >= 1e6:
                rows.append({"params": n, "flops": c, "tokens": d, "loss": f.loss(n, d)})
    return pd.DataFrame(rows)


def serving_by_concurrency(inp: ServeInput, levels: list[int] | None = None) -> pd.DataFrame:
    """Latency, throughput and $/M output tokens as concurrency grows to the memory limit."""
    top = estimate_serving(replace(inp, concurrency=None)).max_concurrency
    levels = levels or [c for c in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if c <= max(1, top)]
    rows = []
    for c in levels:
        est = estimate_serving(replace(inp, concurrency=c))
        rows.append({"concurrency": c, "time_per_output_token_ms": est.time_per_output_token_s * 1e3,
                     "decode_tokens_per_s": est.decode_tokens_per_s, "decode_bound": est.decode_bound,
                     "cost_per_million_output_tokens_usd": est.cost_per_million_output_tokens_usd})
    return pd.DataFrame(rows)


def serving_by_gpu(inp: ServeInput, gpu_ids: list[str] | None = None, node_size: int = 8) -> pd.DataFrame:
    """The same model and traffic on each GPU type, each in its cheapest tensor-parallel group: of the
    divisors of n_heads from the smallest group that holds the model (and at least ``inp.gpus``) up to
    one ``node_size``-GPU node, the one with the lowest $ per million output tokens. (The smallest
    group that fits is rarely the cheapest: it leaves little memory for KV caches, so few sequences
    share each read of the weights.) GPUs where even n_heads ranks cannot hold the model are left out."""
    spec = resolve_model(inp.model)
    chosen = inp.gpu if isinstance(inp.gpu, str) else inp.gpu.id
    divisors = [d for d in range(1, spec.n_heads + 1) if spec.n_heads % d == 0]
    rows = []
    precision = compute_precision(weight_dtype(inp.dtype))
    for gpu_id in gpu_ids or list(gpu_catalog()):
        if gpu_catalog()[gpu_id].peak_flops(precision) <= 0:
            continue  # no published rate at this precision (the Ascend's fp32)
        price = inp.price_usd_per_hour if gpu_id == chosen else None  # others: catalog price
        base = replace(inp, gpu=gpu_id, price_usd_per_hour=price)
        smallest = max(inp.gpus, estimate_serving(replace(base, gpus=inp.gpus)).min_gpus_to_fit)
        if smallest > spec.n_heads:
            continue
        sizes = [d for d in divisors if smallest <= d <= max(node_size, smallest)]
        est = min((estimate_serving(replace(base, gpus=d)) for d in sizes),
                  key=lambda e: (e.cost_per_million_output_tokens_usd, e.gpus))
        rows.append({
            "gpu": gpu_id, "gpus_per_replica": est.gpus,
            "cost_per_million_output_tokens_usd": est.cost_per_million_output_tokens_usd,
            "cost_per_million_input_tokens_usd": est.cost_per_million_input_tokens_usd,
            "time_per_output_token_ms": est.time_per_output_token_s * 1e3, "prefill_ms": est.prefill_seconds * 1e3,
            "decode_tokens_per_s": est.decode_tokens_per_s, "concurrency": est.concurrency,
            "gpus_needed": est.gpus_needed, "price_usd_per_hour": est.price_usd_per_hour,
        })
    return pd.DataFrame(rows, columns=SERVING_BY_GPU_COLUMNS)


FINETUNE_BY_GPU_COLUMNS = ["method", "gpu", "name", "gpus", "fits", "parallelism", "memory_gib", "weights", "adapters",
                           "gradients", "optimizer", "activations", "checkpoints", "logits", "overhead", "total",
                           "trainable_params", "gpu_hours", "wall_clock_hours", "cost_usd", "price_usd_per_hour", "mfu",
                           "stack", "max_seq_len_fits", "tokens_per_second"]


def finetune_by_gpu(inp: FinetuneInput, methods: tuple[str, ...] | None = None, gpu_ids: list[str] | None = None,
                    limit: int | None = None) -> pd.DataFrame:
    """Each catalog GPU type × each fine-tuning method (full, LoRA, QLoRA) at its smallest fitting count
    (1, 2, 4, ... GPUs; more than one data parallel with ZeRO-3 / FSDP full sharding), with memory by
    component (bytes per GPU) and the run's GPU-hours, wall clock and cost. A GPU type that cannot hold
    the run within ``limit`` GPUs gets a row with ``fits`` False and no count or cost. The user's price
    applies to the user's GPU; the others use the catalog's. An explicit MFU applies to every GPU."""
    chosen = inp.gpu if isinstance(inp.gpu, str) else inp.gpu.id
    rows = []
    for method in methods or METHODS:
        for gpu_id in gpu_ids or list(gpu_catalog()):
            gpu = gpu_catalog()[gpu_id]
            price = inp.price_usd_per_hour if gpu_id == chosen else None
            modelled = method in stack_methods(inp.stack)
            est = smallest_fit(replace(inp, method=method, price_usd_per_hour=price), gpu_id,
                               limit or MAX_GPUS) if modelled else None
            if est is None:
                rows.append({"method": method, "gpu": gpu_id, "name": gpu.name, "gpus": None, "fits": False,
                             "parallelism": f"does not fit on {limit or MAX_GPUS} GPUs" if modelled else
                             f"stack {inp.stack} does not model {method}", "stack": inp.stack,
                             "memory_gib": gpu.memory_gib, "price_usd_per_hour": price or gpu.price_usd_per_hour})
                continue
            rows.append({
                "method": method, "gpu": gpu_id, "name": gpu.name, "gpus": est.gpus, "fits": True,
                "parallelism": est.parallelism, "memory_gib": gpu.memory_gib, "weights": est.weights_bytes,
                "adapters": est.adapter_bytes, "gradients": est.gradients_bytes, "optimizer": est.optimizer_bytes,
                # the peak's remainder beyond the other parts: under checkpointing the recomputed layer and the
                # logits are not alive together, so the stacked parts add up to the peak
                "activations": est.total_bytes_per_gpu - est.weights_bytes - est.adapter_bytes - est.gradients_bytes
                - est.optimizer_bytes - est.checkpoint_bytes - est.logits_bytes,
                "checkpoints": est.checkpoint_bytes, "logits": est.logits_bytes, "overhead": est.overhead_bytes,
                "total": est.total_bytes_per_gpu + est.overhead_bytes, "trainable_params": est.trainable_params,
                "gpu_hours": est.gpu_hours, "wall_clock_hours": est.wall_clock_hours, "cost_usd": est.cost_usd,
                "price_usd_per_hour": est.price_usd_per_hour, "mfu": est.mfu, "stack": est.stack,
                "max_seq_len_fits": est.max_seq_len_fits, "tokens_per_second": est.tokens_per_second,
            })
    table = pd.DataFrame(rows, columns=FINETUNE_BY_GPU_COLUMNS)
    table["gpus"] = table["gpus"].astype("Int64")  # no count where nothing fits
    table["fits"] = table["fits"].astype(bool)
    return table


_STACK_DEFAULTS = dict(optimizer=None, loss_chunks=None, logits_bytes=None, offload_checkpoints=None, cuda_context_gib=None,
                       fragmentation=None, hfu=None, dequant_efficiency=None)
LONGEST_CONTEXT_COLUMNS = ["gpu", "name", "memory_gib", "method", "stack", "max_seq_len_fits"]


def finetune_longest_context(inp: FinetuneInput, stacks: tuple[str, ...] | None = None,
                             methods: tuple[str, ...] | None = None, gpu_ids: list[str] | None = None) -> pd.DataFrame:
    """The longest sequence that fits one GPU of each catalog type at the run's batch, per method and stack
    (``max_seq_len_fits`` of the same estimate); None where a stack does not model the method, 0 where not
    even one token fits. The run's own stack keeps the run's overrides of its assumptions; every other stack
    runs on its own defaults (stacks.toml), with the run's host memory."""
    rows = []
    for stack in stacks or stack_ids():
        for method in methods or METHODS:
            for gpu_id in gpu_ids or list(gpu_catalog()):
                gpu = gpu_catalog()[gpu_id]
                longest = None
                if method in stack_methods(stack):
                    one = replace(inp, stack=stack, method=method, gpu=gpu_id, gpus=1, zero=0, tp=1, pp=1)
                    if stack != inp.stack or method != inp.method:  # the overrides belong to the run's own choice
                        one = replace(one, **_STACK_DEFAULTS)
                    longest = estimate_finetune(one).max_seq_len_fits
                rows.append({"gpu": gpu_id, "name": gpu.name, "memory_gib": gpu.memory_gib, "method": method,
                             "stack": stack, "max_seq_len_fits": longest})
    table = pd.DataFrame(rows, columns=LONGEST_CONTEXT_COLUMNS)
    table["max_seq_len_fits"] = table["max_seq_len_fits"].astype("Int64")
    return table


def cheapest_fits(table: pd.DataFrame) -> pd.DataFrame:
    """The cheapest fitting row per method (ties: fewer GPUs, then shorter wall clock)."""
    fit = table[table["fits"].astype(bool)]
    if fit.empty:
        return fit
    ordered = fit.sort_values(["method", "cost_usd", "gpus", "wall_clock_hours"], kind="stable")
    return ordered.groupby("method", sort=False).head(1).reset_index(drop=True)
