"""Fine-tuning software stacks: what the framework does to memory and speed beyond the method's maths.

The same QLoRA of the same model holds very different context lengths under Hugging Face Transformers
+ PEFT, torchtune and Unsloth, because of three things the method does not fix (engine/catalog/
stacks.toml gives each stack's values with the code or docs they follow, and a date):

- **Logits and loss**: the LM head produces T × V logits (T = batch × sequence tokens, V the
  vocabulary). Transformers keeps them in bf16 and up-casts them to fp32 for the loss; torchtune
  splits them into 8 chunks and up-casts one at a time (``CEWithChunkedOutputLoss``); Unsloth's Cut
  Cross-Entropy (Wijmans et al. 2024) never stores them. Bytes: T·V·(resident + transient / chunks).
- **Where activation checkpoints live**: with gradient checkpointing each layer keeps its 2·T·h-byte
  input; Unsloth's ``use_gradient_checkpointing="unsloth"`` (and torchtune's
  ``enable_activation_offloading``) move them to CPU memory, two layers' worth staying on the GPU (the
  one in use and the one prefetched), so the host must hold the rest.
- **The optimizer**: AdamW with fp32 moments, 8-bit AdamW (Dettmers et al. 2022), paged (bitsandbytes
  keeps the state in CUDA unified memory that the caching allocator does not see, counted here
  against the host) or stepped inside the backward pass (torchtune's ``optimizer_in_bwd``: one
  parameter's gradient alive at a time).

Fixed overheads: the CUDA context (not seen by ``torch.cuda.max_memory_allocated``) and the caching
allocator's fragmentation, a fraction of what is allocated.

Speed: the hardware FLOPs (the recomputed forward of gradient checkpointing included) at the stack's
hardware FLOPs utilization, plus for QLoRA the dequantization of every frozen NF4 weight to bf16 before
each matmul that uses it (bitsandbytes' ``MatMul4Bit``: forward and backward, and the recomputed
forward): memory-bound, it reads 4.127 bits and writes 2 bytes per weight at ``dequant_efficiency`` of
the GPU's bandwidth, whatever the batch, so it weighs most on short sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from engine.catalog import GPUSpec, stack_rows
from engine.errors import ValidationError, require_choice, require_number

CHECKPOINT_LAYERS_ON_GPU = 2  # offloaded checkpoints: the layer in use and the one prefetched


@dataclass(frozen=True, slots=True)
class Stack:
    """One stack's defaults for one method (the ``*_full`` rows of stacks.toml apply to full fine-tuning)."""

    id: str
    name: str
    methods: tuple[str, ...]
    logits_resident: float
    logits_transient: float
    loss_chunks: int
    offload_checkpoints: bool
    optimizer: str
    paged: bool
    optimizer_in_backward: bool
    pure_bf16: bool
    attention: str
    cuda_context_gib: float
    fragmentation: float
    hfu: float | None  # None: the GPU's typical MFU (gpus.toml) × hfu_scale
    hfu_scale: float  # on the typical MFU, where hfu is None or the GPU is outside the fitted class
    hfu_class_bandwidth: float | None  # hfu holds for GPUs up to this bandwidth (GB/s): the class it was measured on
    dequant_efficiency: float
    source: str
    date: str


@cache
def stack_ids() -> tuple[str, ...]:
    return tuple(row["id"] for row in stack_rows())


def stack_methods(stack_id: object) -> tuple[str, ...]:
    """The methods a stack models."""
    sid = require_choice("stack", stack_id, stack_ids())
    return tuple(next(r for r in stack_rows() if r["id"] == sid)["methods"])


def get_stack(stack_id: object, method: str) -> Stack:
    """The stack's defaults for ``method``; one line naming what it models when it does not model it."""
    sid = require_choice("stack", stack_id, stack_ids())
    row = next(r for r in stack_rows() if r["id"] == sid)
    methods = tuple(row["methods"])
    if method not in methods:
        raise ValidationError(f"stack {sid} does not support method {method} here; it supports {', '.join(methods)}")
    pick = lambda key: row.get(f"{key}_full", row[key]) if method == "full" else row[key]  # noqa: E731
    hfu = row[f"hfu_{method}"]
    return Stack(
        id=sid, name=row["name"], methods=methods, logits_resident=float(row["logits_resident"]),
        logits_transient=float(row["logits_transient"]), loss_chunks=int(row["loss_chunks"]),
        offload_checkpoints=bool(pick("offload_checkpoints")), optimizer=str(pick("optimizer")),
        paged=bool(pick("paged")), optimizer_in_backward=bool(pick("optimizer_in_backward")),
        pure_bf16=bool(row["pure_bf16"]), attention=row["attention"], cuda_context_gib=float(row["cuda_context_gib"]),
        fragmentation=float(row["fragmentation"]), hfu=None if hfu == "typical" else float(hfu),
        hfu_scale=float(row.get("hfu_scale", 1.0)), hfu_class_bandwidth=row.get("hfu_class_max_bandwidth_gbs"),
        dequant_efficiency=float(row["dequant_efficiency"]), source=row["source"], date=row["date"],
    )


def logits_loss_bytes(tokens: int, vocab: int, resident: float, transient: float, chunks: int) -> float:
    """Peak bytes of the logits and the loss: T·V·(resident + transient / chunks)."""
    return float(tokens) * vocab * (resident + transient / chunks)


def dequant_bytes_per_weight(nf4_bits: float) -> float:
    """Memory traffic of dequantizing one NF4 weight to bf16: read its 4.127 bits, write 2 bytes."""
    return nf4_bits / 8.0 + 2.0


def dequant_seconds_per_step(quantized_params: float, passes: int, bandwidth_bytes_per_s: float,
                             efficiency: float, nf4_bits: float) -> float:
    """Seconds one micro-batch spends dequantizing: every quantized weight, once per pass that uses it."""
    return passes * quantized_params * dequant_bytes_per_weight(nf4_bits) / (bandwidth_bytes_per_s * efficiency)


def offloaded_checkpoint_split(checkpoint_bytes: float, n_layers: int, offload: bool) -> tuple[float, float]:
    """(on the GPU, on the host) of the checkpointed layer inputs."""
    if not offload or n_layers <= 0:
        return checkpoint_bytes, 0.0
    on_gpu = checkpoint_bytes * min(CHECKPOINT_LAYERS_ON_GPU, n_layers) / n_layers
    return on_gpu, checkpoint_bytes - on_gpu


def run_speed(stack: Stack, method: str, ckpt: bool, batch: int, gpu: GPUSpec, s: int, per_token: float,
              forward: float, trained: float, quantized: int, given_mfu: tuple[float, str] | None,
              hfu: float | None, dequant_efficiency: float | None, fp32: bool, nf4_bits: float) -> dict:
    """GPU-seconds of a run: the hardware FLOPs (model FLOPs + the recomputed forward under checkpointing)
    at the stack's hardware FLOPs utilization, or the model FLOPs at a given MFU (which already includes
    any recompute); plus, for QLoRA, the dequantization time of every micro-batch."""
    flops = per_token * trained
    hw_per_token = per_token + (forward if ckpt else 0.0)
    peak = gpu.peak_flops("fp32" if fp32 else "bf16")
    if given_mfu is not None:
        mfu, basis = given_mfu
        util = mfu * hw_per_token / per_token
    else:
        in_class = stack.hfu is not None and (stack.hfu_class_bandwidth is None
                                              or gpu.bandwidth_gbs <= stack.hfu_class_bandwidth)
        default = stack.hfu if in_class else min(1.0, gpu.typical_mfu * stack.hfu_scale)
        util = require_number("hfu", default if hfu is None else hfu, low=0, low_inclusive=False, high=1.0)
        basis = ("given hardware FLOPs utilization" if hfu is not None else
                 f"stack {stack.id}'s hardware FLOPs utilization on its GPU class (engine/catalog/stacks.toml)"
                 if in_class else f"typical bf16 MFU of {gpu.id} (engine/catalog/gpus.toml) × {stack.hfu_scale:g} "
                 f"for the {stack.id} stack")
        mfu = util * per_token / hw_per_token
    if peak * mfu <= 0:
        raise ValidationError(f"gpu {gpu.id} has no throughput at that precision in the catalog")
    compute = flops / (peak * mfu)
    dequant = 0.0
    if method == "qlora":
        eff = require_number("dequant-efficiency", stack.dequant_efficiency if dequant_efficiency is None
                             else dequant_efficiency, low=0, low_inclusive=False, high=1.0)
        step = dequant_seconds_per_step(quantized, 3 if ckpt else 2, gpu.bandwidth_gbs * 1e9, eff, nf4_bits)
        dequant = trained / (s * batch) * step  # every micro-batch dequantizes the whole model again
    seconds = compute + dequant
    return dict(flops=flops, hw_flops=hw_per_token * trained, mfu=mfu, basis=basis, hfu=util,
                gpu_hours=seconds / 3600.0, dequant_hours=dequant / 3600.0,
                effective_mfu=flops / (peak * seconds) if seconds > 0 else 0.0)


def stack_notes(stack: Stack, method: str, ckpt: bool, offload: bool, logits_bytes: float, context: float,
                fragmentation: float) -> tuple[str, ...]:
    """The assumptions a stack adds to an estimate, one sentence each."""
    notes = [f"stack {stack.id} ({stack.name}): logits and loss {logits_bytes:g} B per token × vocabulary entry; "
             f"attention {stack.attention}; CUDA context {context / 2**30:g} GiB + {fragmentation:.0%} allocator "
             f"fragmentation (sources: engine/catalog/stacks.toml, {stack.date})"]
    if offload and ckpt:
        notes.append("activation checkpoints offloaded to CPU memory; two layers' inputs stay on the GPU")
    if stack.paged:
        notes.append("paged optimizer state in CUDA unified memory, counted against the host")
    if stack.optimizer_in_backward:
        notes.append("optimizer stepped in the backward pass: one parameter's gradient alive at a time")
    if method == "qlora":
        notes.append("QLoRA dequantizes every NF4 weight to bf16 in each pass that uses it (forward, backward"
                     + (", recomputed forward" if ckpt else "") + "): memory-bound time added to the matmuls'")
    return tuple(notes)


__all__ = ["Stack", "stack_ids", "stack_methods", "get_stack", "logits_loss_bytes", "dequant_seconds_per_step",
           "dequant_bytes_per_weight", "offloaded_checkpoint_split", "run_speed", "stack_notes"]
