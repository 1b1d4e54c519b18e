"""Training compute and cost: FLOPs, GPU-hours, wall clock, dollars, energy and CO2.

Model FLOPs follow PaLM's MFU accounting (Chowdhery et al. 2022, App. B): 6·N + 12·L·H·Q·T per token,
N the weights that take part in a matrix product (active weights for MoE). Hardware FLOPs add what
activation recomputation runs again: a full forward pass for full recompute (Narayanan et al. 2021,
Sec. 5.1: 8·T·P instead of 6·T·P), the attention core for selective recompute (Korthikanti et al.
2022, Sec. 5). Time = model FLOPs / (GPUs · peak · MFU), or hardware FLOPs / (GPUs · achieved FLOP/s).
Energy is GPU board power (TDP) × GPU-hours × PUE, the convention of the Llama 2 and 3 papers' carbon
accounting; host CPUs, memory and network are left to the PUE you choose.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from engine.catalog import GPUSpec, defaults, resolve_gpu
from engine.estimate.architecture import ModelSpec
from engine.estimate.models import resolve_model
from engine.errors import ValidationError, require_choice, require_finite_result, require_number

RECOMPUTE = ("none", "selective", "full")
PRECISIONS = ("bf16", "fp8", "fp32")


@dataclass(frozen=True, slots=True)
class TrainingInput:
    """What a training run is: a model (preset or spec) or a bare parameter count, tokens, hardware."""

    tokens: float
    gpu: GPUSpec | str
    gpus: int = 1
    model: ModelSpec | str | None = None
    params: float | None = None
    seq_len: int | None = None
    mfu: float | None = None
    achieved_tflops: float | None = None
    gpu_hours: float | None = None
    price_usd_per_hour: float | None = None
    precision: str = "bf16"
    recompute: str = "none"
    pue: float | None = None
    grid_kg_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    params: float
    active_params: float
    tokens: float
    seq_len: int
    flops_per_token: float
    flops_total: float
    hardware_flops_total: float
    gpu: str
    gpus: int
    peak_tflops_per_gpu: float
    mfu: float
    hfu: float
    tokens_per_s: float
    gpu_hours: float
    wall_clock_hours: float
    wall_clock_days: float
    price_usd_per_hour: float
    cost_usd: float
    energy_kwh: float
    co2_kg: float
    pue: float
    grid_kg_per_kwh: float
    basis: str

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_training(inp: TrainingInput) -> TrainingEstimate:
    """Estimate a training run. With ``gpu_hours`` (a published figure) the MFU is implied instead."""
    gpu = resolve_gpu(inp.gpu)
    tokens = require_number("tokens", inp.tokens, low=1, high=1e17)
    n_gpus = require_number("gpus", inp.gpus, low=1, high=1e7, integer=True)
    precision = require_choice("precision", inp.precision, PRECISIONS)
    recompute = require_choice("recompute", inp.recompute, RECOMPUTE)
    dflt = defaults()
    pue = require_number("pue", dflt["pue"] if inp.pue is None else inp.pue, low=1.0, high=5.0)
    grid = require_number(
        "grid intensity", dflt["grid_kg_co2_per_kwh"] if inp.grid_kg_per_kwh is None else inp.grid_kg_per_kwh,
        low=0.0, high=5.0,
    )
    price = require_number(
        "price", gpu.price_usd_per_hour if inp.price_usd_per_hour is None else inp.price_usd_per_hour,
        low=0.0, high=1e4,
    )
    peak = gpu.peak_flops(precision)
    if peak <= 0:
        raise ValidationError(f"gpu {gpu.id} has no {precision} throughput in the catalog")

    if inp.model is not None:
        if inp.params is not None:
            raise ValidationError("give either a model or a parameter count, not both")
        spec = resolve_model(inp.model)
        seq = spec.context if inp.seq_len is None else inp.seq_len
        seq = require_number("seq-len", seq, low=1, high=1e8, integer=True)
        params, active = float(spec.params_total), float(spec.params_active)
        per_token = spec.training_flops_per_token(seq)
        attention_fwd = spec.attention_flops_forward_per_token(seq)
    elif inp.params is not None:
        params = active = require_number("params", inp.params, low=1, high=1e15)
        seq = 0 if inp.seq_len is None else require_number("seq-len", inp.seq_len, low=1, high=1e8, integer=True)
        per_token = 6.0 * params  # no architecture: no attention term (Kaplan et al. 2020, eq. 2.1)
        attention_fwd = 0.0
    else:
        raise ValidationError("a model preset or a parameter count (--params) is required")

    flops = per_token * tokens
    # What the GPUs execute: recompute runs (part of) the forward pass a second time.
    if recompute == "full":
        hw_flops = flops + flops / 3.0
    elif recompute == "selective":
        hw_flops = flops + attention_fwd * tokens
    else:
        hw_flops = flops

    given = [x is not None for x in (inp.mfu, inp.achieved_tflops, inp.gpu_hours)]
    if sum(given) > 1:
        raise ValidationError("give at most one of mfu, achieved-tflops and gpu-hours")
    if inp.gpu_hours is not None:
        gpu_hours = require_number("gpu-hours", inp.gpu_hours, low=0, low_inclusive=False, high=1e12)
        basis = "published GPU-hours (MFU implied)"
    elif inp.achieved_tflops is not None:
        achieved = require_number("achieved-tflops", inp.achieved_tflops, low=0, low_inclusive=False, high=peak / 1e12)
        gpu_hours = hw_flops / (achieved * 1e12) / 3600.0
        basis = "achieved hardware TFLOP/s per GPU"
    else:
        mfu = gpu.typical_mfu_for(precision) if inp.mfu is None else inp.mfu
        mfu = require_number("mfu", mfu, low=0, low_inclusive=False, high=1.0)
        if peak * mfu <= 0:  # underflow: both tiny
            raise ValidationError(f"inputs out of range: mfu {mfu:g} at {peak:g} FLOP/s gives no throughput")
        gpu_hours = flops / (peak * mfu) / 3600.0
        basis = "MFU"
    seconds = gpu_hours * 3600.0
    wall_h = gpu_hours / n_gpus
    if not (math.isfinite(gpu_hours) and wall_h > 0):
        raise ValidationError(f"inputs out of range: they give {gpu_hours:g} GPU-hours; check mfu, achieved-tflops or gpu-hours")
    mfu = flops / (seconds * peak)
    if mfu > 1.0:
        raise ValidationError(
            f"{gpu_hours:.4g} GPU-hours cannot run {flops:.3g} FLOPs on {gpu.id}: that implies MFU {mfu:.3g} > 1; "
            "check gpu-hours, tokens and the GPU"
        )
    hfu = hw_flops / (seconds * peak)
    energy = gpu_hours * gpu.tdp_w / 1000.0 * pue
    est = TrainingEstimate(
        params=params, active_params=active, tokens=tokens, seq_len=int(seq), flops_per_token=per_token,
        flops_total=flops, hardware_flops_total=hw_flops, gpu=gpu.id, gpus=int(n_gpus),
        peak_tflops_per_gpu=peak / 1e12, mfu=mfu, hfu=hfu, tokens_per_s=tokens / (wall_h * 3600.0),
        gpu_hours=gpu_hours, wall_clock_hours=wall_h, wall_clock_days=wall_h / 24.0,
        price_usd_per_hour=price, cost_usd=gpu_hours * price, energy_kwh=energy, co2_kg=energy * grid,
        pue=pue, grid_kg_per_kwh=grid, basis=basis,
    )
    require_finite_result(est, "mfu, achieved-tflops or gpu-hours")
    return est


def mfu_from_throughput(flops_per_token: float, tokens_per_s: float, n_chips: int, peak_flops: float) -> float:
    """Model FLOPs utilization = achieved model FLOP/s over aggregate peak (PaLM, App. B)."""
    return flops_per_token * tokens_per_s / (n_chips * peak_flops)
