"""Fine-tuning an open model on your data: full, LoRA and QLoRA memory per GPU, FLOPs, time and cost.

- **Full fine-tuning** is training: its memory is :func:`engine.estimate.memory.estimate_memory` (ZeRO
  model states, Korthikanti activations, tensor / pipeline parallelism) and its model FLOPs are PaLM's
  6·N + 12·L·H·Q·T per token (Chowdhery et al. 2022, App. B), as for pre-training.
- **LoRA** (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1) freezes the
  base weights and adds to each targeted linear layer W (d_in × d_out) a product B·A with A: r × d_in
  and B: d_out × r, so r·(d_in + d_out) trainable parameters per layer and no bias (PEFT's default
  ``bias="none"``). Targets, in PEFT's module names for Llama-style models:
  ``qv`` = q_proj and v_proj (PEFT's default for Llama), ``attention`` = q, k, v and o, ``all-linear``
  = attention plus the MLP projections (gate, up, down; every routed and shared expert of an MoE layer;
  the router stays frozen). MoE experts are counted as separate linear layers, as in the reference
  implementations and transformers 4.x; transformers 5 fuses each layer's experts into 3-D tensors,
  which PEFT 0.21 adapts as whole parameters (with the router), a different count. Counts are per
  logical projection: a checkpoint that fuses q, k and v into one matrix (GPT-2's c_attn) adapts them
  together with fewer parameters. With GQA the k and v projections are d_model × n_kv_heads·head_dim
  (Ainslie et al. 2023). With MLA (DeepSeek-V2 report, Sec. 2.1) there are no separate k and v projections, so
  ``qv`` is refused; ``attention`` targets the down and up projections of the query and the joint KV latent
  and the output projection.
- **QLoRA** (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"): the frozen linear
  layers of the blocks are stored in 4-bit NormalFloat with double quantization, 4 + 8/64 + 32/(64·256)
  = 4.127 bits per parameter including the quantization constants (Sec. 3, "Double Quantization"); the
  embeddings, the LM head and the norms stay in 16-bit (bitsandbytes quantizes only the blocks' linear
  layers, as in the paper's setup); adapters are bf16 and the optimizer is paged 32-bit AdamW (Sec. 3,
  "Paged Optimizers"), counted here as resident on the GPU (paging moves it to CPU memory only under
  pressure).
- **Adapter training state** (LoRA and QLoRA): bf16 adapters (2 B/param), bf16 gradients (2 B/param) and
  AdamW's two fp32 moments (8 B/param; 2 B/param for 8-bit AdamW, Dettmers et al. 2022), for the
  trainable parameters only: the QLoRA recipe (the paper's qlora.py keeps no fp32 master copy).
- **Activations** follow memory.py (Korthikanti et al. 2022, FlashAttention): backward through frozen
  layers keeps the same tensors (the inputs of norms, activation functions and attention, and of every
  adapted linear layer, which its adapter's A needs), plus each adapter's r-wide A·x (2·s·b·r bytes per
  adapted layer). For ``all-linear`` that is the full count; for ``qv`` and ``attention`` it is an upper
  bound, since a frozen, unadapted matmul (o_proj, the MLP's down projection) needs only its weight for
  the input gradient, and autograd need not keep its input. Gradient checkpointing
  keeps each layer's input only (Korthikanti Sec. 4.3; Chen et al. 2016) plus one layer's full
  activations, live while that layer is recomputed in backward.
- **FLOPs per token**: full 6·N + attention; LoRA and QLoRA 4·N + 6·N_adapter + attention: the backward
  pass still propagates activation gradients through every frozen matrix (2·N) but computes no weight
  gradients for them (the other 2·N of full training's backward), while the adapters train in full
  (6 per parameter). Attention's score and value products (no weights) cost 3× their forward either way.
  Gradient checkpointing adds one forward pass to the hardware FLOPs, not to the model FLOPs an MFU is
  quoted against. QLoRA's dequantization is not a matmul FLOP: it is its own memory-bound time (finetune_stacks).
- **Time and cost**: model FLOPs of tokens × epochs / (GPUs × peak bf16 × MFU), the catalog's typical
  MFU or the model lab's measured one; dollars = GPU-hours × price.

Not modelled: LoRA dropout masks (PEFT's default lora_dropout is 0), bitsandbytes' transient
dequantized copy of one matrix, and communication buffers; the fixed per-GPU overhead covers them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from engine.catalog import GPUSpec, resolve_gpu
from engine.errors import ValidationError, require_choice, require_finite_result, require_number
from engine.estimate.architecture import ModelSpec
from engine.estimate.memory import OPTIMIZER_STATE_BYTES, MemoryInput, activation_bytes_per_layer, estimate_memory
from engine.estimate.finetune_stacks import (
    Stack, get_stack, offloaded_checkpoint_split, run_speed, stack_notes,
)
from engine.estimate.models import resolve_model

METHODS = ("full", "lora", "qlora")
TARGETS = ("qv", "attention", "all-linear")
BASE_DTYPES = ("bf16", "fp16", "fp32")
# Optimizer state per trainable adapter parameter: AdamW's fp32 momentum and variance, or 8-bit ones.
ADAPTER_OPTIMIZER_BYTES = {"adamw": 8.0, "adamw-8bit": 2.0}
ADAPTER_BYTES = 2.0  # bf16 adapters (fp32 when the whole run is fp32, e.g. on a CPU)
# NF4 with double quantization: 4 bits + 8-bit constants per 64 weights + fp32 constants per 256 blocks
# (Dettmers et al. 2023, Sec. 3): 4 + 8/64 + 32/(64·256) = 4.126953125 bits.
NF4_BITS_PER_PARAM = 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0)
MAX_TOKENS = 1e14  # far beyond any fine-tuning set (Llama 3 pre-trained on 1.5e13 tokens)
MAX_GPUS = 1024


@dataclass(frozen=True, slots=True)
class LinearLayer:
    """One kind of linear layer in a block: ``count`` copies of a d_in × d_out matrix per layer."""

    name: str
    d_in: int
    d_out: int
    count: int = 1  # copies per block (MoE: experts)
    group: str = "attention"  # attention | mlp | router


def block_linears(spec: ModelSpec, moe: bool) -> list[LinearLayer]:
    """The linear layers of one Transformer block, named as PEFT's Llama/Mistral/DeepSeek modules."""
    d, h = spec.d_model, spec.n_heads
    out: list[LinearLayer] = []
    if spec.is_mla:
        if spec.q_lora_rank:
            out += [LinearLayer("q_a_proj", d, spec.q_lora_rank), LinearLayer("q_b_proj", spec.q_lora_rank, h * spec.qk_head_dim)]
        else:
            out.append(LinearLayer("q_proj", d, h * spec.qk_head_dim))
        out += [LinearLayer("kv_a_proj_with_mqa", d, spec.kv_lora_rank + spec.qk_rope_head_dim),
                LinearLayer("kv_b_proj", spec.kv_lora_rank, h * (spec.qk_nope_head_dim + spec.v_head_dim)),
                LinearLayer("o_proj", h * spec.v_head_dim, d)]
    else:
        hd, kv = spec.head_dim, spec.n_kv_heads
        out += [LinearLayer("q_proj", d, h * hd), LinearLayer("k_proj", d, kv * hd),
                LinearLayer("v_proj", d, kv * hd), LinearLayer("o_proj", h * hd, d)]
    if moe:
        width, copies = spec.d_ff_expert, spec.n_experts + spec.n_shared_experts
        out.append(LinearLayer("router", d, spec.n_experts, 1, "router"))
    else:
        width, copies = spec.d_ff, 1
    if spec.gated:
        out += [LinearLayer("gate_proj", d, width, copies, "mlp"), LinearLayer("up_proj", d, width, copies, "mlp")]
    else:
        out.append(LinearLayer("up_proj", d, width, copies, "mlp"))
    out.append(LinearLayer("down_proj", width, d, copies, "mlp"))
    return out


def targeted(spec: ModelSpec, target: str, moe: bool) -> list[LinearLayer]:
    """The layers a LoRA ``target`` adapts in one block (dense or MoE)."""
    target = require_choice("target", target, TARGETS)
    layers = block_linears(spec, moe)
    if target == "qv":
        if spec.is_mla:
            raise ValidationError("target qv names no layer of an MLA model (DeepSeek's attention has no separate "
                                  "q and v projections); use attention or all-linear")
        return [x for x in layers if x.name in ("q_proj", "v_proj")]
    if target == "attention":
        return [x for x in layers if x.group == "attention"]
    return [x for x in layers if x.group in ("attention", "mlp")]


def lora_trainable_params(spec: ModelSpec, rank: int, target: str) -> int:
    """Trainable LoRA parameters: r·(d_in + d_out) per targeted linear layer, over every block (Hu et
    al. 2021, Sec. 4.1), exactly what PEFT's ``print_trainable_parameters`` reports for bias="none"."""
    n_dense = spec.n_dense_layers
    n_moe = spec.n_layers - n_dense
    total = n_dense * sum(rank * (x.d_in + x.d_out) * x.count for x in targeted(spec, target, False))
    if n_moe:
        total += n_moe * sum(rank * (x.d_in + x.d_out) * x.count for x in targeted(spec, target, True))
    return int(total)


def check_rank(spec: ModelSpec, rank: object, target: str) -> int:
    """A rank of at least 1 and at most the narrowest side of every targeted layer (beyond it B·A is
    no longer low-rank and adds parameters without adding expressiveness)."""
    r = require_number("rank", rank, low=1, high=1e6, integer=True)
    layers = targeted(spec, target, False) + (targeted(spec, target, True) if spec.is_moe else [])
    narrow = min(layers, key=lambda x: min(x.d_in, x.d_out))
    width = min(narrow.d_in, narrow.d_out)
    if r > width:
        raise ValidationError(f"rank {r} is above the width of {narrow.name} ({narrow.d_in} × {narrow.d_out}); "
                              f"use a rank of at most {width}")
    return int(r)


def block_linear_params(spec: ModelSpec) -> int:
    """Weights of every linear layer in the blocks (what 4-bit quantization applies to)."""
    n_dense = spec.n_dense_layers
    per = lambda moe: sum(x.d_in * x.d_out * x.count for x in block_linears(spec, moe))  # noqa: E731
    return int(n_dense * per(False) + (spec.n_layers - n_dense) * (per(True) if spec.is_moe else 0))


def adapter_flops_forward_per_token(spec: ModelSpec, rank: int, target: str) -> float:
    """Forward FLOPs of the adapters per token: 2 per adapter weight that a token passes through (MoE:
    only its top-k routed and the shared experts' adapters)."""
    n_dense = spec.n_dense_layers
    per = lambda moe: sum(rank * (x.d_in + x.d_out) * x.count for x in targeted(spec, target, moe))  # noqa: E731
    total = n_dense * per(False)
    if spec.is_moe and spec.n_layers > n_dense:
        active = 0.0
        for x in targeted(spec, target, True):
            share = (spec.top_k + spec.n_shared_experts) if x.group == "mlp" else 1
            active += rank * (x.d_in + x.d_out) * share
        total += (spec.n_layers - n_dense) * active
    return 2.0 * total


def model_flops_per_token(spec: ModelSpec, method: str, rank: int, target: str, seq_len: int) -> tuple[float, float]:
    """(model FLOPs per trained token, forward FLOPs per token): module docstring, "FLOPs per token"."""
    attn, n = 3.0 * spec.attention_flops_forward_per_token(seq_len), spec.params_matmul_active
    if method == "full":
        return 6.0 * n + attn, 2.0 * n + attn / 3.0
    adapter_fwd = adapter_flops_forward_per_token(spec, rank, target)
    return 4.0 * n + 3.0 * adapter_fwd + attn, 2.0 * n + adapter_fwd + attn / 3.0


@dataclass(frozen=True, slots=True)
class FinetuneInput:
    """A fine-tuning run: a model, a method, the data's tokens × epochs, and the GPUs.

    ``batch`` is the micro-batch per GPU (sequences) and ``seq_len`` the tokens per sequence; they size
    activations only. ``gpus`` GPUs work data-parallel; ``zero`` shards model states as ZeRO stages
    (Rajbhandari et al. 2020; FSDP's full sharding = 3; for LoRA/QLoRA it shards the frozen weights,
    adapters, gradients and optimizer like FSDP+QLoRA). ``tp``/``pp`` apply to full fine-tuning only.
    ``mfu`` None: the GPU's typical MFU; ``measured_mfu``: the model lab's latest calibration."""

    model: ModelSpec | str
    tokens: float
    gpu: GPUSpec | str
    method: str = "lora"
    epochs: float = 1.0
    gpus: int = 1
    rank: int = 16
    alpha: float | None = None
    target: str = "all-linear"
    seq_len: int | None = None
    batch: int = 1
    gradient_checkpointing: bool = False
    mfu: float | None = None
    measured_mfu: bool = False
    price_usd_per_hour: float | None = None
    dtype: str = "bf16"
    optimizer: str | None = None  # None: the stack's (stacks.toml)
    zero: int = 0
    tp: int = 1
    pp: int = 1
    overhead_gib: float | None = None  # given: replaces the stack's CUDA context + fragmentation
    stack: str = "hf"
    loss_chunks: int | None = None
    logits_bytes: float | None = None  # bytes per token × vocab entry held by the logits and loss
    offload_checkpoints: bool | None = None
    host_memory_gib: float | None = None
    cuda_context_gib: float | None = None
    fragmentation: float | None = None
    hfu: float | None = None  # hardware FLOPs utilization (instead of an MFU)
    dequant_efficiency: float | None = None


@dataclass(frozen=True, slots=True)
class FinetuneEstimate:
    method: str
    model: str
    trainable_params: int
    total_params: int
    weights_bytes: float
    adapter_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    total_bytes_per_gpu: float
    overhead_bytes: float
    gpu_memory_bytes: float
    headroom_bytes: float
    fits: bool
    tokens: float
    epochs: float
    trained_tokens: float
    seq_len: int
    batch: int
    flops_per_token: float
    flops_total: float
    hardware_flops_total: float
    gpu: str
    gpus: int
    mfu: float
    mfu_basis: str
    gpu_hours: float
    wall_clock_hours: float
    price_usd_per_hour: float
    cost_usd: float
    rank: int
    alpha: float
    target: str
    gradient_checkpointing: bool
    quantized_params: int
    parallelism: str
    stack: str = "hf"
    logits_bytes: float = 0.0
    checkpoint_bytes: float = 0.0
    cuda_context_bytes: float = 0.0
    fragmentation_bytes: float = 0.0
    host_bytes: float = 0.0
    host_memory_bytes: float | None = None
    fits_gpu: bool = True
    fits_host: bool = True
    max_seq_len_fits: int = 0
    optimizer: str = ""
    offload_checkpoints: bool = False
    attention: str = ""
    hfu: float = 0.0
    dequant_hours: float = 0.0
    tokens_per_second: float = 0.0
    effective_mfu: float = 0.0
    assumptions: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        out = asdict(self)
        out["assumptions"] = list(self.assumptions)
        return out


def _mfu(inp: FinetuneInput, gpu: GPUSpec) -> tuple[float, str]:
    if inp.measured_mfu:
        if inp.mfu is not None:
            raise ValidationError("give either mfu or measured-mfu, not both")
        from engine.artifacts import latest_calibration  # lazy: reads the workspace registry

        cal = latest_calibration()
        if not cal or not cal.get("mfu"):
            raise ValidationError("no measured MFU yet: run `preflight calibrate --preset NAME` first, or give mfu")
        value = require_number("measured mfu", cal["mfu"], low=0, low_inclusive=False, high=1.0)
        return value, f"measured by calibrate ({cal.get('preset')} on {cal.get('device_name')})"
    if inp.mfu is None:
        return gpu.typical_mfu, f"typical bf16 MFU of {gpu.id} (engine/catalog/gpus.toml)"
    return require_number("mfu", inp.mfu, low=0, low_inclusive=False, high=1.0), "given"


@dataclass(frozen=True, slots=True)
class _Memory:
    weights: float
    adapters: float
    gradients: float
    optimizer: float
    activations: float
    quantized: int


def _memory(spec: ModelSpec, method: str, rank: int, target: str, s: int, b: int, ckpt: bool, dtype: str,
            optimizer: str, gpus: int, zero: int, tp: int, pp: int) -> _Memory:
    """Per-GPU memory by component (bytes), without the fixed overhead."""
    recompute = "full" if ckpt else "none"
    if method == "full":
        dp = gpus // (tp * pp)
        mem = estimate_memory(MemoryInput(model=spec, mode="train", batch=b, seq_len=s, dtype=dtype, dp=dp, zero=zero,
                                          tp=tp, pp=pp, recompute=recompute, optimizer=optimizer))
        acts = mem.activations_bytes
        if ckpt:  # the layer being recomputed holds its full activations during its backward
            acts += activation_bytes_per_layer(spec, b=b, s=s, tp=tp, sp=tp > 1, recompute="none", moe=spec.is_moe,
                                               bytes_per_value=4.0 if dtype == "fp32" else 2.0)
        return _Memory(mem.weights_bytes, 0.0, mem.gradients_bytes, mem.optimizer_bytes, acts, 0)
    act = 4.0 if dtype == "fp32" else 2.0  # bytes per activation value (fp32 LoRA on a CPU; else 16-bit)
    base = estimate_memory(MemoryInput(model=spec, mode="train", batch=b, seq_len=s, dtype="fp32" if act == 4.0 else "bf16",
                                       recompute=recompute))
    acts = base.activations_bytes
    full_layer = activation_bytes_per_layer(spec, b=b, s=s, recompute="none", moe=spec.is_moe, bytes_per_value=act)
    # each adapter keeps its r-wide A·x for B's weight gradient
    adapter_acts_per_layer = lambda moe: sum(  # noqa: E731
        act * s * b * rank * (x.count if x.group != "mlp" or not moe else spec.top_k + spec.n_shared_experts)
        for x in targeted(spec, target, moe))
    n_dense = spec.n_dense_layers
    adapter_acts = n_dense * adapter_acts_per_layer(False) + (spec.n_layers - n_dense) * (
        adapter_acts_per_layer(True) if spec.is_moe else 0.0)
    # A frozen matmul without an adapter needs only its weight for the input gradient, so autograd keeps
    # no input for it (PyTorch saves mm's input only when the weight requires a gradient): without an
    # adapter on down_proj its input (the MLP's width, 2·s·b·f bytes) goes; without one on gate/up, the
    # MLP's normed input (2·s·b·h). The attention output is kept anyway (FlashAttention's backward needs it).
    names = {x.name for x in targeted(spec, target, False)}
    width = (spec.top_k + spec.n_shared_experts) * spec.d_ff_expert if spec.is_moe else spec.d_ff
    unadapted = act / 2.0 * s * b * ((2.0 * width if "down_proj" not in names else 0.0)
                                      + (2.0 * spec.d_model if not names & {"gate_proj", "up_proj"} else 0.0))
    if ckpt:
        acts += full_layer - unadapted + adapter_acts / spec.n_layers
    else:
        acts += adapter_acts - spec.n_layers * unadapted
    trainable = lora_trainable_params(spec, rank, target)
    quantized = block_linear_params(spec) if method == "qlora" else 0
    if method == "qlora":
        weights = quantized * NF4_BITS_PER_PARAM / 8.0 + (spec.params_total - quantized) * 2.0
    else:
        weights = spec.params_total * (4.0 if dtype == "fp32" else 2.0)
    shard = lambda stage: gpus if zero >= stage else 1  # noqa: E731
    per = 4.0 if dtype == "fp32" else ADAPTER_BYTES  # adapters and their gradients follow an fp32 base
    return _Memory(weights / shard(3), trainable * per / shard(3), trainable * per / shard(2),
                   trainable * ADAPTER_OPTIMIZER_BYTES[optimizer] / shard(1), acts, quantized)


SEQ_LEN_MAX = 10_000_000  # the seq-len input's upper bound; max_seq_len_fits searches up to it


@dataclass(frozen=True, slots=True)
class _Plan:
    """Validated inputs of one run, everything but the sequence length (what max_seq_len_fits varies)."""

    spec: ModelSpec
    method: str
    rank: int
    target: str
    b: int
    ckpt: bool
    dtype: str
    optimizer: str
    n: int
    zero: int
    tp: int
    pp: int
    stack: Stack
    logits_bytes: float  # per token × vocab entry
    offload: bool
    fixed_overhead: float | None  # bytes; None: CUDA context + fragmentation
    context: float
    fragmentation: float
    gpu_memory: float
    host_memory: float | None


def _budget(p: _Plan, s: int) -> dict:
    """Bytes per GPU by component and on the host at sequence length ``s``, and whether they fit: the one
    memory function behind ``fits`` and ``max_seq_len_fits``."""
    spec = p.spec
    mem = _memory(spec, p.method, p.rank, p.target, s, p.b, p.ckpt, p.dtype, p.optimizer, p.n, p.zero, p.tp, p.pp)
    weights, grads, opt, acts = mem.weights, mem.gradients, mem.optimizer, mem.activations
    tokens = s * p.b
    logits = ckpt_gpu = ckpt_host = host_opt = 0.0
    if p.pp == 1:  # memory.py adds fp32 logits (4 B) on the last stage; the stack's convention replaces them
        acts -= 4.0 * tokens * spec.vocab_size / p.tp
        logits = tokens * spec.vocab_size * p.logits_bytes / p.tp
        if p.ckpt:  # each layer's input, 2·s·b·h bytes at 16-bit (sequence parallel splits it over tp)
            value = 4.0 if p.dtype == "fp32" else 2.0
            ckpt_all = spec.n_layers * tokens * spec.d_model * value / (p.tp if p.tp > 1 else 1)
            acts -= ckpt_all
            ckpt_gpu, ckpt_host = offloaded_checkpoint_split(ckpt_all, spec.n_layers, p.offload)
    if p.method == "full" and p.stack.pure_bf16 and p.dtype != "fp32":  # no fp32 master copy
        opt -= 4.0 * spec.params_total / (p.n // (p.tp * p.pp) if p.zero >= 1 else 1) / (p.tp * p.pp)
    if p.stack.optimizer_in_backward:  # one parameter's gradient alive at a time: the largest matrix
        grads = min(grads, spec.vocab_size * spec.d_model * (4.0 if p.dtype == "fp32" else 2.0))
    if p.stack.paged:
        opt, host_opt = 0.0, opt
    # Under checkpointing the logits and loss are freed before backward recomputes its first layer, so
    # the two are never alive together: the peak holds the larger. Without it every layer's activations
    # are still alive when the loss is computed.
    live = max(acts, logits) if p.ckpt and p.pp == 1 else acts + logits
    allocated = weights + mem.adapters + grads + opt + ckpt_gpu + live
    if p.fixed_overhead is None:
        context, frag = p.context, p.fragmentation * allocated
    else:
        context, frag = p.fixed_overhead, 0.0
    host = ckpt_host + host_opt
    fits_gpu = allocated + context + frag <= p.gpu_memory
    fits_host = host == 0 or (p.host_memory is not None and host <= p.host_memory)
    return dict(weights=weights, adapters=mem.adapters, gradients=grads, optimizer=opt, activations=acts,
                checkpoints=ckpt_gpu, logits=logits, allocated=allocated, context=context, fragmentation=frag,
                host=host, fits_gpu=fits_gpu, fits_host=fits_host, fits=fits_gpu and fits_host,
                quantized=mem.quantized)


def max_seq_len_fits(p: _Plan) -> int:
    """The longest sequence (at the plan's batch) whose budget fits, by binary search over ``_budget``:
    memory grows with the sequence, so one token more does not fit. 0 when not even one token fits."""
    if not _budget(p, 1)["fits"]:
        return 0
    lo, hi = 1, SEQ_LEN_MAX
    if _budget(p, hi)["fits"]:
        return hi
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _budget(p, mid)["fits"] else (lo, mid)
    return lo


def _plan(inp: FinetuneInput, spec: ModelSpec, method: str, gpu: GPUSpec) -> tuple[_Plan, float, float]:
    """Validate everything but the sequence length; (plan, alpha, trainable parameters)."""
    n = require_number("gpus", inp.gpus, low=1, high=1e6, integer=True)
    b = require_number("batch", inp.batch, low=1, high=1e5, integer=True)
    zero = require_number("zero", inp.zero, low=0, high=3, integer=True)
    tp = require_number("tp", inp.tp, low=1, high=1024, integer=True)
    pp = require_number("pp", inp.pp, low=1, high=1024, integer=True)
    stack = get_stack(inp.stack, method)
    optimizer = stack.optimizer if inp.optimizer is None else inp.optimizer
    if method == "full":
        dtype = require_choice("dtype", inp.dtype, BASE_DTYPES)
        if n % (tp * pp):
            raise ValidationError(f"gpus ({n}) must be a multiple of tp × pp = {tp * pp}")
        optimizer = require_choice("optimizer", optimizer, OPTIMIZER_STATE_BYTES)
        rank, target, alpha, trainable = 0, "", 0.0, spec.params_total
    else:
        dtype = "nf4" if method == "qlora" else require_choice("dtype", inp.dtype, BASE_DTYPES)
        if tp > 1 or pp > 1:
            raise ValidationError("tensor and pipeline parallelism are modelled for full fine-tuning only; LoRA and "
                                  "QLoRA spread over GPUs by data parallelism (zero 3 shards the frozen weights)")
        optimizer = require_choice("optimizer", optimizer, ADAPTER_OPTIMIZER_BYTES)
        target = require_choice("target", inp.target, TARGETS)
        rank = check_rank(spec, inp.rank, target)
        alpha = float(require_number("alpha", 2.0 * rank if inp.alpha is None else inp.alpha, low=0,
                                     low_inclusive=False, high=1e6))
        trainable = lora_trainable_params(spec, rank, target)
    chunks = require_number("loss-chunks", stack.loss_chunks if inp.loss_chunks is None else inp.loss_chunks,
                            low=1, high=1e6, integer=True)
    per_logit = (stack.logits_resident + stack.logits_transient / chunks if inp.logits_bytes is None
                 else require_number("logits-bytes", inp.logits_bytes, low=0, high=64))
    fixed = None if inp.overhead_gib is None else require_number("overhead-gib", inp.overhead_gib, low=0, high=1e4) * 2**30
    context = require_number("cuda-context-gib", stack.cuda_context_gib if inp.cuda_context_gib is None
                             else inp.cuda_context_gib, low=0, high=1e3) * 2**30
    frag = require_number("fragmentation", stack.fragmentation if inp.fragmentation is None else inp.fragmentation,
                          low=0, high=1)
    host = None if inp.host_memory_gib is None else require_number(
        "host-memory-gib", inp.host_memory_gib, low=0, low_inclusive=False, high=1e6) * 2**30
    offload = stack.offload_checkpoints if inp.offload_checkpoints is None else bool(inp.offload_checkpoints)
    plan = _Plan(spec, method, rank, target, int(b), bool(inp.gradient_checkpointing), dtype, optimizer, int(n),
                 int(zero), int(tp), int(pp), stack, float(per_logit), offload, fixed, context, frag,
                 gpu.memory_bytes, host)
    return plan, alpha, trainable


def estimate_finetune(inp: FinetuneInput, *, longest: bool = True) -> FinetuneEstimate:
    """Memory per GPU (and on the host), fit, the longest sequence that fits, FLOPs, GPU-hours, tokens per
    second, wall clock and dollars of one fine-tuning run on one software stack. ``longest=False`` skips
    the search for the longest sequence (max_seq_len_fits is then -1): for searches over many runs."""
    spec = resolve_model(inp.model)
    method = require_choice("method", inp.method, METHODS)
    gpu = resolve_gpu(inp.gpu)
    tokens = require_number("tokens", inp.tokens, low=1, high=MAX_TOKENS)
    epochs = require_number("epochs", inp.epochs, low=0, low_inclusive=False, high=1000)
    s = min(spec.context, 2048) if inp.seq_len is None else inp.seq_len
    s = int(require_number("seq-len", s, low=1, high=SEQ_LEN_MAX, integer=True))
    price = require_number("price", gpu.price_usd_per_hour if inp.price_usd_per_hour is None else inp.price_usd_per_hour,
                           low=0, high=1e4)
    p, alpha, trainable = _plan(inp, spec, method, gpu)
    mem = _budget(p, s)
    if mem["host"] > 0 and p.host_memory is None:
        where = "offloads activation checkpoints" if p.offload and p.ckpt else "pages its optimizer state"
        raise ValidationError(f"stack {p.stack.id} {where} to CPU memory ({mem['host'] / 2**30:.3g} GiB here): give "
                              "host-memory-gib" + (", or turn checkpoint offloading off" if p.offload else ""))
    total = mem["allocated"]

    per_token, forward = model_flops_per_token(spec, method, p.rank, p.target, s)
    trained = tokens * epochs
    if (inp.mfu is not None or inp.measured_mfu) and inp.hfu is not None:
        raise ValidationError("give either an mfu or an hfu, not both")
    speed = run_speed(p.stack, p.method, p.ckpt, p.b, gpu, s, per_token, forward, trained, mem["quantized"],
                      _mfu(inp, gpu) if inp.mfu is not None or inp.measured_mfu else None, inp.hfu,
                      inp.dequant_efficiency, p.dtype == "fp32", NF4_BITS_PER_PARAM)
    gpu_hours = speed["gpu_hours"]
    wall = gpu_hours / p.n
    if not (math.isfinite(gpu_hours) and wall > 0):
        raise ValidationError(f"inputs out of range: they give {gpu_hours:g} GPU-hours; check mfu and tokens")
    n, zero, tp, pp = p.n, p.zero, p.tp, p.pp
    if method == "full":
        parallelism = (f"data parallel over {n // (tp * pp)}" + (f", ZeRO-{zero}" if zero else "")
                       + (f", TP={tp}" if tp > 1 else "") + (f", PP={pp}" if pp > 1 else "")) if n > 1 else "1 GPU"
    else:
        parallelism = "1 GPU" if n == 1 else (f"FSDP / ZeRO-{zero} over {n} GPUs" if zero else
                                             f"data parallel over {n} GPUs (each holds the whole model)")
    overhead = mem["context"] + mem["fragmentation"]
    est = FinetuneEstimate(
        method=method, model=spec.id, trainable_params=int(trainable), total_params=int(spec.params_total),
        weights_bytes=mem["weights"], adapter_bytes=mem["adapters"], gradients_bytes=mem["gradients"],
        optimizer_bytes=mem["optimizer"], activations_bytes=mem["activations"], total_bytes_per_gpu=total,
        overhead_bytes=overhead, gpu_memory_bytes=gpu.memory_bytes, headroom_bytes=gpu.memory_bytes - total - overhead,
        fits=mem["fits"], tokens=tokens, epochs=epochs, trained_tokens=trained,
        seq_len=int(s), batch=p.b, flops_per_token=per_token, flops_total=speed["flops"],
        hardware_flops_total=speed["hw_flops"], gpu=gpu.id, gpus=int(n), mfu=speed["mfu"], mfu_basis=speed["basis"],
        gpu_hours=gpu_hours, wall_clock_hours=wall, price_usd_per_hour=price, cost_usd=gpu_hours * price,
        rank=int(p.rank), alpha=alpha, target=p.target, gradient_checkpointing=p.ckpt,
        quantized_params=int(mem["quantized"]), parallelism=parallelism, stack=p.stack.id, logits_bytes=mem["logits"],
        checkpoint_bytes=mem["checkpoints"], cuda_context_bytes=mem["context"], fragmentation_bytes=mem["fragmentation"],
        host_bytes=mem["host"], host_memory_bytes=p.host_memory, fits_gpu=mem["fits_gpu"], fits_host=mem["fits_host"],
        max_seq_len_fits=max_seq_len_fits(p) if longest else -1, optimizer=p.optimizer + (" (paged)" if p.stack.paged else "")
        + (" (in backward)" if p.stack.optimizer_in_backward else ""), offload_checkpoints=p.offload and p.ckpt,
        attention=p.stack.attention, hfu=speed["hfu"], dequant_hours=speed["dequant_hours"],
        tokens_per_second=trained / (gpu_hours * 3600.0), effective_mfu=speed["effective_mfu"],
        assumptions=_assumptions(method, p.dtype, p.optimizer, p.ckpt)
        + stack_notes(p.stack, method, p.ckpt, p.offload, p.logits_bytes, p.context, p.fragmentation),
    )
    require_finite_result(est, "mfu, tokens and epochs")
    return est


def _assumptions(method: str, dtype: str, optimizer: str, ckpt: bool) -> tuple[str, ...]:
    notes = []
    if method == "full":
        notes.append(f"full fine-tune: {dtype} weights and gradients, {optimizer} state per ZeRO "
                     "(engine.estimate.memory); model FLOPs 6·N + attention per token")
    else:
        opt = "fp32 AdamW moments (8 B/param)" if optimizer == "adamw" else "8-bit AdamW moments (2 B/param)"
        notes.append(f"adapters bf16 (2 B/param), their gradients bf16 (2 B/param), {opt}; "
                     "no optimizer state or gradient for the frozen weights")
        notes.append("model FLOPs 4·N + 6·N_adapter + attention per token: backprop through the frozen weights "
                     "without their weight gradients (Hu et al. 2021)")
    if method == "qlora":
        notes.append(f"frozen block linears in NF4 with double quantization, {NF4_BITS_PER_PARAM:.4g} bits/param "
                     "(Dettmers et al. 2023, Sec. 3); embeddings, LM head and norms stay in 16-bit")
        notes.append("the optimizer counted as resident on the GPU unless the stack pages it; dequantization "
                     "time is added to the matmuls' (not in the FLOP count)")
    notes.append("activations per Korthikanti et al. 2022 with FlashAttention" +
                 ("; gradient checkpointing keeps each layer's input plus one recomputed layer" if ckpt else ""))
    return tuple(notes)


# ---- smallest fitting GPU count per GPU type ----------------------------------------------------------
def gpu_counts(limit: int = MAX_GPUS) -> list[int]:
    """The counts a by-GPU search tries: 1, 2, 4, 8, ... up to ``limit``."""
    return [2**i for i in range(int(math.log2(limit)) + 1)]


def smallest_fit(inp: FinetuneInput, gpu: GPUSpec | str, limit: int = MAX_GPUS) -> FinetuneEstimate | None:
    """The run on the fewest GPUs of this type that hold it (1, 2, 4, ...): one GPU as given, more GPUs
    data parallel with ZeRO-3 / FSDP full sharding (the weights too, so the count can shrink the
    per-GPU share of a large model). None when even ``limit`` GPUs cannot hold it."""
    for n in gpu_counts(limit):
        one = replace(inp, gpu=gpu, gpus=n, zero=0 if n == 1 else 3, tp=1, pp=1)
        if estimate_finetune(one, longest=False).fits:
            return estimate_finetune(one)
    return None


# ---- the data page's link: fine-tuning a chosen open model on a dataset's tokens ----------------------
__all__ = [
    "FinetuneInput", "FinetuneEstimate", "estimate_finetune", "lora_trainable_params", "block_linears",
    "targeted", "check_rank", "smallest_fit", "gpu_counts", "METHODS", "TARGETS", "NF4_BITS_PER_PARAM",
]
