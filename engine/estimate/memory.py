"""Memory per GPU for training and inference.

Training model states follow ZeRO (Rajbhandari et al. 2020, Sec. 3.1 and Fig. 1): with mixed
precision, 2 bytes of 16-bit weights + 2 bytes of 16-bit gradients + K bytes of optimizer state per
parameter, K = 12 for Adam (fp32 master weights, momentum and variance). ZeRO stage 1 partitions the
optimizer states over the data-parallel degree N_d, stage 2 also the gradients, stage 3 also the
weights. Tensor parallelism shards every layer's matrices and the vocabulary (Megatron-LM, Shoeybi et
al. 2019); pipeline parallelism gives each stage a contiguous slice of layers, the first stage the
input embedding and the last the LM head (Narayanan et al. 2021).

Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models"), counting the input of every operation that backward needs, 2 bytes per value and 1 byte per
dropout mask. For a GPT layer this gives their eq. 1, s·b·h·(34 + 5·a·s/h); with tensor parallelism
eq. 2, s·b·h·(10 + 24/t + 5·a·s/(h·t)); with sequence parallelism eq. 3, s·b·h/t·(34 + 5·a·s/h);
selective recompute drops the 5·a·s²·b attention-score term (Sec. 5, eq. 5) and full recompute keeps
only each layer's input, 2·s·b·h (Sec. 4.3). Those are for eager attention (``attention="eager"``);
the default is FlashAttention (Dao et al. 2022), which never stores the scores, only a 4-byte
log-sum-exp per head and query. The same counting generalizes to GQA/MLA projections, gated MLPs
(8·s·b·f for SwiGLU instead of 4·s·b·f), MoE (top-k + shared experts per token, the fp32 router, and
each token's k expert input and output copies) and sliding windows. Under the 1F1B pipeline schedule
stage i holds p − i micro-batches in flight (Sec. 4.2.3), so the first stage holds activations for
about all L layers. The output layer adds its norm and head inputs and fp32 logits on the last stage
(eq. 6 discussion). Inference keeps one chunk's activations (chunked prefill) beside weights and KV.

Not modelled (stated so that nobody is surprised): expert parallelism, ZeRO-3 gather buffers,
communication buckets, and the one recomputed layer that is live during backward under full recompute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.catalog import GPUSpec, defaults, resolve_gpu
from engine.estimate.architecture import ModelSpec
from engine.estimate.models import resolve_model
from engine.errors import ValidationError, require_choice, require_number
from engine.estimate.dtypes import (
    BYTES_PER_VALUE, QUANTIZED, TRAIN_DTYPES, bytes_per_weight, kv_dtype, weight_dtype,
)

MODES = ("train", "infer")
RECOMPUTE = ("none", "selective", "full")
ATTENTION = ("flash", "eager")
# Optimizer state bytes per parameter, by optimizer, for mixed-precision (16-bit) training; the
# fp32 master copy is counted here (ZeRO's K). With fp32 training there is no master copy (K - 4).
OPTIMIZER_STATE_BYTES = {
    "adamw": 12.0,  # fp32 master + momentum + variance (Rajbhandari et al. 2020, Sec. 3.1)
    "adamw-8bit": 6.0,  # fp32 master + 8-bit momentum and variance (Dettmers et al. 2022)
    "sgd": 8.0,  # fp32 master + momentum
}


@dataclass(frozen=True, slots=True)
class MemoryInput:
    """A model, a batch and a parallelism plan. ``batch`` is the micro-batch per data-parallel rank
    (train) or the number of concurrent sequences (infer); ``seq_len`` the tokens per sequence."""

    model: ModelSpec | str
    mode: str = "train"
    batch: int = 1
    seq_len: int | None = None
    dtype: str = "bf16"
    kv_dtype: str | None = None
    dp: int = 1
    zero: int = 0
    tp: int = 1
    pp: int = 1
    recompute: str = "none"
    sequence_parallel: bool = True
    optimizer: str = "adamw"
    microbatches: int | None = None
    gpu: GPUSpec | str | None = None
    overhead_gib: float | None = None
    attention: str = "flash"
    prefill_chunk_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    mode: str
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    kv_cache_bytes: float
    total_bytes_per_gpu: float
    overhead_bytes: float
    params_per_gpu: float
    gpus: int
    pipeline_stage: int
    gpu: str | None
    gpu_memory_bytes: float | None
    fits: bool | None
    headroom_bytes: float | None
    bytes_per_param_convention: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Validated, resolved form of a MemoryInput (internal)."""

    spec: ModelSpec
    mode: str
    b: int
    s: int
    dtype: str
    kv: str
    dp: int
    zero: int
    tp: int
    pp: int
    recompute: str
    sp: bool
    optimizer: str
    microbatches: int
    attention: str
    prefill_chunk: int


def _plan(inp: MemoryInput) -> _Plan:
    spec = resolve_model(inp.model)
    mode = require_choice("mode", inp.mode, MODES)
    b = require_number("batch", inp.batch, low=1, high=1e6, integer=True)
    s = spec.context if inp.seq_len is None else inp.seq_len
    s = require_number("seq-len", s, low=1, high=1e8, integer=True)
    dtype = weight_dtype(inp.dtype)
    if mode == "train" and dtype not in TRAIN_DTYPES:
        raise ValidationError(f"dtype {dtype!r} is for inference only; training allows: {', '.join(TRAIN_DTYPES)}")
    kv = kv_dtype(inp.kv_dtype) if inp.kv_dtype is not None else default_kv_dtype(dtype)
    dp = require_number("dp", inp.dp, low=1, high=1e6, integer=True)
    zero = require_number("zero", inp.zero, low=0, high=3, integer=True)
    tp = require_number("tp", inp.tp, low=1, high=1024, integer=True)
    pp = require_number("pp", inp.pp, low=1, high=min(spec.n_layers, 1024), integer=True)
    check_tensor_parallel(spec, tp)
    recompute = require_choice("recompute", inp.recompute, RECOMPUTE)
    optimizer = require_choice("optimizer", inp.optimizer, OPTIMIZER_STATE_BYTES)
    m = pp if inp.microbatches is None else require_number("microbatches", inp.microbatches, low=1, high=1e6, integer=True)
    attention = require_choice("attention", inp.attention, ATTENTION)
    chunk = require_number("prefill-chunk-tokens", defaults()["prefill_chunk_tokens"] if inp.prefill_chunk_tokens is None
                           else inp.prefill_chunk_tokens, low=1, high=1e8, integer=True)
    return _Plan(spec, mode, b, s, dtype, kv, dp, zero, tp, pp, recompute, bool(inp.sequence_parallel), optimizer, m,
                 attention, chunk)


def default_kv_dtype(dtype: str) -> str:
    """The KV cache follows 16- and 32-bit weights and stays bf16 for quantized ones (fp8, int8, int4),
    as vLLM's kv_cache_dtype="auto" does; an fp8 KV cache is an explicit choice."""
    return dtype if dtype in ("fp32", "bf16", "fp16") else "bf16"


def check_tensor_parallel(spec: ModelSpec, tp: int) -> None:
    """Megatron-style tensor parallelism splits attention by heads: tp must divide n_heads (KV heads
    fewer than tp are replicated, as Megatron-LM and vLLM do for GQA)."""
    if tp > spec.n_heads or spec.n_heads % tp:
        raise ValidationError(f"tp must divide n_heads ({spec.n_heads}), got {tp}")


def _stage_layers(spec: ModelSpec, pp: int, stage: int) -> tuple[int, int]:
    """(dense layers, MoE layers) held by pipeline ``stage``: layers split as evenly as possible."""
    base, extra = divmod(spec.n_layers, pp)
    start = stage * base + min(stage, extra)
    count = base + (1 if stage < extra else 0)
    dense = max(0, min(start + count, spec.n_dense_layers) - start)
    return dense, count - dense


def _layer_params_per_gpu(spec: ModelSpec, moe: bool, tp: int) -> float:
    """Weights of one layer on one tensor-parallel rank: matrices sharded, norms replicated."""
    norms = spec.layer_norm_params()
    mats = spec.attention_params() + (spec.moe_params(active=False) if moe else spec.mlp_params(spec.d_ff))
    return mats / tp + norms


def _stage_params(spec: ModelSpec, p: _Plan, stage: int) -> float:
    dense, moe = _stage_layers(spec, p.pp, stage)
    params = dense * _layer_params_per_gpu(spec, False, p.tp) + moe * _layer_params_per_gpu(spec, True, p.tp)
    vocab = spec.vocab_size * spec.d_model / p.tp
    if stage == 0:
        params += vocab + (spec.context * spec.d_model if spec.position == "learned" else 0)
    if stage == p.pp - 1:
        params += spec.norm_params()
        # The LM head: its own matrix, or with tied embeddings a copy on the last stage when pp > 1.
        if not spec.tied_embeddings or p.pp > 1:
            params += vocab
    return params


def activation_bytes_per_layer(spec: ModelSpec, *, b: int, s: int, tp: int = 1, sp: bool = False,
                               recompute: str = "none", moe: bool = False, bytes_per_value: float = 2.0,
                               attention: str = "flash") -> float:
    """Activation bytes one layer keeps for backward (Korthikanti et al. 2022, eqs. 1-5, generalized).

    ``attention="eager"`` materializes the a·s² score matrix (softmax output, dropout mask and output:
    the paper's 5·a·s²·b); ``"flash"`` (FlashAttention, Dao et al. 2022; PyTorch SDPA) keeps only the
    fp32 log-sum-exp per head and query, 4·a·s·b bytes, and recomputes the scores in backward, which
    is what selective recompute does for eager attention."""
    h, a = spec.d_model, spec.n_heads
    scale = bytes_per_value / 2.0  # the paper's coefficients are in 2-byte units
    if recompute == "full":
        return 2.0 * s * b * h * scale / (tp if sp else 1)
    mask = 1.0 if spec.dropout else 0.0
    # Outside the tensor-parallel region: two norm inputs, the attention and MLP inputs (2 bytes each),
    # and the two residual dropout masks (1 byte each).
    replicated = s * b * h * (8.0 * scale + 2.0 * mask)
    qk, vd = spec.qk_head_dim, spec.v_dim
    kv_heads = a if spec.is_mla else spec.n_kv_heads  # MLA training expands K and V per head
    proj = 2.0 * s * b * (a * qk + kv_heads * qk + kv_heads * vd + a * vd) * scale
    if spec.is_mla:  # the compressed query and KV latents feed their up-projections
        replicated += 2.0 * s * b * (spec.q_lora_rank + spec.kv_lora_rank + spec.qk_rope_head_dim) * scale
    if moe:
        width = (spec.top_k + spec.n_shared_experts) * spec.d_ff_expert
        # Router logits in fp32 (4·s·b·E bytes), plus each token's copies for its top-k experts: the
        # experts' inputs, and their outputs kept for the gradient of the gate weights.
        replicated += 4.0 * s * b * spec.n_experts + 2.0 * (2.0 * s * b * spec.top_k * h) * scale
    else:
        width = spec.d_ff
    mlp = (8.0 if spec.gated else 4.0) * s * b * width * scale
    parallel = proj + mlp
    if attention == "flash":
        if recompute != "full":
            parallel += 4.0 * a * s * b  # fp32 log-sum-exp, one per head and query
    elif recompute == "none":
        span = spec.cached_positions(s)
        # softmax output (2 bytes) + dropout mask (1) + dropout output (2) per score: 5·a·s²·b
        parallel += a * s * span * b * ((4.0 + mask) * scale if spec.dropout else 2.0 * scale)
    if sp:
        return (replicated + parallel) / tp
    return replicated + parallel / tp


def _output_layer_activation_bytes(spec: ModelSpec, b: int, s: int, tp: int, bytes_per_value: float,
                                   sp: bool = False) -> float:
    """Final-norm and LM-head inputs (split over tp only with sequence parallelism) and the fp32 logits
    for the loss (vocab-parallel): Korthikanti et al.'s 4·s·b·h/t·(1 + V/h) at 2 bytes with sp."""
    hidden = 2.0 * s * b * spec.d_model * bytes_per_value / (tp if sp else 1)
    return hidden + 4.0 * s * b * spec.vocab_size / tp


def inference_activation_bytes(spec: ModelSpec, tokens: int, sequences: int, tp: int = 1,
                               bytes_per_value: float = 2.0) -> float:
    """Transient peak of a forward pass over ``tokens`` tokens at once (a prefill chunk): one layer's
    widest intermediate (activations are freed layer by layer at inference), plus fp32 logits for the
    last position of each of ``sequences`` sequences."""
    width = (spec.top_k + spec.n_shared_experts) * spec.d_ff_expert if spec.is_moe else spec.d_ff
    widest = max((3.0 if spec.gated else 2.0) * width, spec.n_heads * (spec.qk_head_dim * 3))
    return tokens * (spec.d_model + widest / tp) * bytes_per_value + sequences * spec.vocab_size / tp * 4.0


def estimate_memory(inp: MemoryInput) -> MemoryEstimate:
    """Memory per GPU of the most loaded pipeline stage, by component, and whether it fits."""
    p = _plan(inp)
    spec = p.spec
    act_value_bytes = 4.0 if p.dtype == "fp32" else 2.0  # fp8 training keeps 16-bit activations
    if p.mode == "train":
        w_bytes = 4.0 if p.dtype == "fp32" else 2.0
        k = OPTIMIZER_STATE_BYTES[p.optimizer] - (4.0 if p.dtype == "fp32" else 0.0)
        layer_acts = dict(b=p.b, s=p.s, tp=p.tp, sp=p.sp and p.tp > 1, recompute=p.recompute,
                          bytes_per_value=act_value_bytes, attention=p.attention)
        per_dense = activation_bytes_per_layer(spec, moe=False, **layer_acts)
        per_moe = activation_bytes_per_layer(spec, moe=True, **layer_acts) if spec.is_moe else 0.0
    else:
        kv_per_layer = (spec.kv_cache_bytes_per_token(BYTES_PER_VALUE[p.kv]) / spec.n_layers
                        * spec.kv_fraction_per_rank(p.tp) * p.b * spec.cached_positions(p.s))
        # Prefill runs in chunks of at most prefill_chunk tokens (Sarathi-Serve; vLLM's chunked prefill).
        infer_acts = inference_activation_bytes(spec, min(p.b * p.s, p.prefill_chunk), p.b, p.tp, act_value_bytes)
    best: tuple[float, int, dict] | None = None
    for stage in range(p.pp):
        params = _stage_params(spec, p, stage)
        dense, moe = _stage_layers(spec, p.pp, stage)
        if p.mode == "train":
            weights = params * w_bytes / (p.dp if p.zero >= 3 else 1)
            grads = params * w_bytes / (p.dp if p.zero >= 2 else 1)
            opt = params * k / (p.dp if p.zero >= 1 else 1)
            in_flight = min(p.pp - stage, p.microbatches)  # 1F1B: stage i holds p - i micro-batches
            acts = (dense * per_dense + moe * per_moe) * in_flight
            if stage == p.pp - 1:
                acts += _output_layer_activation_bytes(spec, p.b, p.s, p.tp, act_value_bytes, p.sp and p.tp > 1)
            kv_bytes = 0.0
        else:
            weights = _inference_weight_bytes(spec, p, stage, params)
            grads = opt = 0.0
            acts = infer_acts
            kv_bytes = kv_per_layer * (dense + moe)
        total = weights + grads + opt + acts + kv_bytes
        parts = dict(weights=weights, grads=grads, opt=opt, acts=acts, kv=kv_bytes, params=params)
        if best is None or total > best[0]:
            best = (total, stage, parts)
    assert best is not None
    total, stage, parts = best

    overhead = (defaults()["overhead_gib"] if inp.overhead_gib is None else
                require_number("overhead-gib", inp.overhead_gib, low=0, high=1e4)) * 2**30
    gpu = resolve_gpu(inp.gpu) if inp.gpu is not None else None
    capacity = gpu.memory_bytes if gpu else None
    fits = None if capacity is None else total + overhead <= capacity
    convention = (
        f"{'fp32' if p.dtype == 'fp32' else '16-bit'} weights and gradients, "
        f"{p.optimizer} state {OPTIMIZER_STATE_BYTES[p.optimizer] - (4 if p.dtype == 'fp32' else 0):g} B/param"
        f"{' incl. fp32 master copy' if p.dtype != 'fp32' else ''}; ZeRO-{p.zero} over dp={p.dp}"
        if p.mode == "train" else
        f"{p.dtype} weights ({bytes_per_weight(p.dtype):g} B/param"
        f"{', embeddings and LM head kept in bf16' if p.dtype in QUANTIZED else ''}), {p.kv} KV cache"
    )
    return MemoryEstimate(
        mode=p.mode, weights_bytes=parts["weights"], gradients_bytes=parts["grads"],
        optimizer_bytes=parts["opt"], activations_bytes=parts["acts"], kv_cache_bytes=parts["kv"],
        total_bytes_per_gpu=total, overhead_bytes=overhead, params_per_gpu=parts["params"],
        gpus=p.dp * p.tp * p.pp, pipeline_stage=stage, gpu=gpu.id if gpu else None,
        gpu_memory_bytes=capacity, fits=fits,
        headroom_bytes=None if capacity is None else capacity - total - overhead,
        bytes_per_param_convention=convention,
    )


def _inference_weight_bytes(spec: ModelSpec, p: _Plan, stage: int, params: float) -> float:
    """Weights of a stage at inference: quantized formats apply to the layers' matrices while the
    embedding and LM head stay in bf16, as GPTQ/AWQ and FP8 checkpoints ship them."""
    if p.dtype not in QUANTIZED:
        return params * bytes_per_weight(p.dtype)
    vocab = spec.vocab_size * spec.d_model / p.tp
    embed = 0.0
    if stage == 0:
        embed += vocab + (spec.context * spec.d_model if spec.position == "learned" else 0)
    if stage == p.pp - 1 and (not spec.tied_embeddings or p.pp > 1):
        embed += vocab
    return (params - embed) * bytes_per_weight(p.dtype) + embed * 2.0
