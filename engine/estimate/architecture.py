"""A decoder-only Transformer described by its architecture, with exact parameter and FLOP counts.

Parameter counts are derived from the shapes, never typed in, and match ``sum(p.numel())`` of the
reference implementations (GPT-2 small: 124,439,808; Llama-2-7B: 6,738,415,616; DeepSeek-V3 main
model, router bias included: 671,026,419,200). Supported: MHA/GQA/MQA, DeepSeek's multi-head latent attention (MLA),
GELU and gated (SwiGLU) MLPs, dense and mixture-of-experts layers, tied or untied embeddings,
learned or rotary positions, LayerNorm or RMSNorm, with or without linear biases (all of them, or
only q/k/v, the attention output or the MLP), per-head q/k norms, extra norms per layer (Gemma 2's
four), sliding windows on all or some layers, partial rotary, shared experts of their own width (with
Qwen2-MoE's sigmoid gate), and MoE layers placed by first_dense_layers, moe_layer_step and
dense_layer_ids. Hugging Face config.json files map onto these fields in ``engine.estimate.hf_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from engine.errors import ValidationError, require_choice, require_number

FFN_KINDS = ("gelu", "swiglu")
POSITION_KINDS = ("learned", "rope")
NORM_KINDS = ("layernorm", "rmsnorm")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture of a decoder-only Transformer (field meanings: engine/catalog/models.toml)."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    head_dim: int = 0
    ffn: str = "swiglu"
    tied_embeddings: bool = False
    position: str = "rope"
    norm: str = "rmsnorm"
    bias: bool = False
    dropout: bool = False
    context: int = 2048
    sliding_window: int = 0
    n_experts: int = 0
    top_k: int = 0
    n_shared_experts: int = 0
    d_ff_expert: int = 0
    first_dense_layers: int = 0
    router_bias: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Finer structure read from Hugging Face configs (engine/estimate/hf_config.py); the defaults
    # keep every older spec as it was.
    qkv_bias: bool = False  # biases on the q, k, v projections only (Qwen2, GLM's attention_bias)
    o_bias: bool = False  # a bias on the attention output projection
    mlp_bias: bool = False  # biases on the MLP's linears (Llama's mlp_bias)
    qk_norm: bool = False  # an RMSNorm of head_dim on queries and on keys in every layer (Qwen3, Gemma 3)
    norms_per_layer: int = 2  # Gemma 2/3: pre- and post-norms around attention and MLP, four
    full_attention_layers: int = 0  # with sliding_window: layers that still attend to everything
    rotary_fraction: float = 1.0  # share of each head's dimensions that rotary rotates (partial rotary)
    d_ff_shared: int = 0  # width of the one shared-expert MLP; 0: n_shared_experts MLPs of d_ff_expert
    shared_expert_gate: bool = False  # Qwen2-MoE: a d_model -> 1 sigmoid gate on the shared expert
    moe_layer_step: int = 1  # Qwen-MoE decoder_sparse_step: layer i is MoE when (i + 1) % step == 0
    dense_layer_ids: tuple[int, ...] = ()  # Qwen-MoE mlp_only_layers: layers kept dense
    id: str = "custom"
    name: str = ""
    train_tokens: float = 0.0
    published_gpu_hours: float = 0.0
    published_gpu: str = ""
    source: str = ""
    date: str = ""
    # Derived in __post_init__ (exact integer counts); not constructor arguments.
    params_total: int = field(init=False, compare=False, default=0)
    params_active: int = field(init=False, compare=False, default=0)
    params_embedding: int = field(init=False, compare=False, default=0)
    params_head: int = field(init=False, compare=False, default=0)
    params_matmul_active: int = field(init=False, compare=False, default=0)

    def __post_init__(self) -> None:
        self._validate()
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        emb = self.vocab_size * self.d_model
        if self.position == "learned":
            emb += self.context * self.d_model
        head = 0 if self.tied_embeddings else self.vocab_size * self.d_model
        n_dense = self.n_dense_layers
        n_moe = self.n_layers - n_dense
        per_common = self.attention_params() + self.layer_norm_params()
        total_layers = n_dense * (per_common + self.mlp_params(self.d_ff)) + n_moe * (
            per_common + self.moe_params(active=False)
        )
        active_layers = n_dense * (per_common + self.mlp_params(self.d_ff)) + n_moe * (
            per_common + self.moe_params(active=True)
        )
        final_norm = self.norm_params()
        object.__setattr__(self, "params_total", emb + head + total_layers + final_norm)
        object.__setattr__(self, "params_active", emb + head + active_layers + final_norm)
        object.__setattr__(self, "params_embedding", emb)
        object.__setattr__(self, "params_head", head)
        # Weights that take part in a matrix product for every token: the layers' matrices plus the LM
        # head (which, when tied, is the embedding matrix). Embedding lookups and norms cost no matmul.
        norms = self.n_layers * (self.layer_norm_params() + self._latent_norm_params()) + final_norm
        object.__setattr__(
            self, "params_matmul_active", active_layers - norms + final_norm + self.vocab_size * self.d_model
        )

    def _validate(self) -> None:
        # Store the validated values: require_number accepts "32" and 32.0 and returns the int 32.
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size", "context"):
            object.__setattr__(self, name, require_number(name, getattr(self, name), low=1, high=1e7, integer=True))
        for name in (
            "head_dim", "sliding_window", "n_experts", "top_k", "n_shared_experts", "d_ff_expert",
            "first_dense_layers", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
            "qk_rope_head_dim", "v_head_dim", "full_attention_layers", "d_ff_shared",
        ):
            object.__setattr__(self, name, require_number(name, getattr(self, name), low=0, high=1e7, integer=True))
        object.__setattr__(self, "norms_per_layer",
                           require_number("norms_per_layer", self.norms_per_layer, low=0, high=16, integer=True))
        object.__setattr__(self, "moe_layer_step",
                           require_number("moe_layer_step", self.moe_layer_step, low=1, high=1e7, integer=True))
        object.__setattr__(self, "rotary_fraction",
                           require_number("rotary_fraction", self.rotary_fraction, low=0, high=1))
        ids = self.dense_layer_ids
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
            raise ValidationError(f"dense_layer_ids must be a list of layer numbers, got {ids!r}")
        object.__setattr__(self, "dense_layer_ids", tuple(sorted({
            require_number("dense_layer_ids", i, low=0, high=1e7, integer=True) for i in ids})))
        object.__setattr__(self, "train_tokens", require_number("train_tokens", self.train_tokens, low=0, high=1e17))
        object.__setattr__(self, "published_gpu_hours",
                           require_number("published_gpu_hours", self.published_gpu_hours, low=0, high=1e12))
        require_choice("ffn", self.ffn, FFN_KINDS)
        require_choice("position", self.position, POSITION_KINDS)
        require_choice("norm", self.norm, NORM_KINDS)
        if self.n_kv_heads > self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValidationError(
                f"n_kv_heads must divide n_heads, got {self.n_kv_heads} kv heads for {self.n_heads} heads"
            )
        if not self.head_dim and self.d_model % self.n_heads:
            raise ValidationError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) or head_dim given"
            )
        if self.n_experts:
            if not 1 <= self.top_k <= self.n_experts:
                raise ValidationError(f"top_k must be in 1..n_experts ({self.n_experts}), got {self.top_k}")
            if not self.d_ff_expert:
                raise ValidationError("d_ff_expert must be > 0 for a mixture-of-experts model")
            if self.first_dense_layers > self.n_layers:
                raise ValidationError("first_dense_layers cannot exceed n_layers")
        elif self.top_k or self.n_shared_experts:
            raise ValidationError("top_k and n_shared_experts need n_experts > 0")
        if self.full_attention_layers > self.n_layers:
            raise ValidationError(f"full_attention_layers ({self.full_attention_layers}) cannot exceed n_layers")
        if self.kv_lora_rank and not (self.qk_nope_head_dim and self.qk_rope_head_dim and self.v_head_dim):
            raise ValidationError("MLA (kv_lora_rank > 0) needs qk_nope_head_dim, qk_rope_head_dim, v_head_dim")

    # ---- structure -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def n_dense_layers(self) -> int:
        """Layers with a dense MLP: all but the MoE ones. A layer i is MoE when i >= first_dense_layers
        (DeepSeek's first_k_dense_replace), (i + 1) % moe_layer_step == 0 and i is not in
        dense_layer_ids (Qwen2/3-MoE's decoder_sparse_step and mlp_only_layers)."""
        if not self.is_moe:
            return self.n_layers
        if self.moe_layer_step == 1 and not self.dense_layer_ids:
            return min(self.first_dense_layers, self.n_layers)
        dense_ids = set(self.dense_layer_ids)
        moe = sum(1 for i in range(self.first_dense_layers, self.n_layers)
                  if (i + 1) % self.moe_layer_step == 0 and i not in dense_ids)
        return self.n_layers - moe

    @property
    def qk_head_dim(self) -> int:
        """Per-head width of queries and keys (MLA: the no-position part plus the rotary part)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.is_mla else self.head_dim

    @property
    def v_dim(self) -> int:
        """Per-head width of values."""
        return self.v_head_dim if self.is_mla else self.head_dim

    @property
    def gated(self) -> bool:
        return self.ffn == "swiglu"

    # ---- parameter counts per block ------------------------------------------------------------
    def norm_params(self) -> int:
        """LayerNorm has a weight and a bias per channel; RMSNorm only a weight."""
        return 2 * self.d_model if self.norm == "layernorm" else self.d_model

    def layer_norm_params(self) -> int:
        """The norms of one layer outside attention's projections: norms_per_layer of d_model (two
        in most models, four in Gemma 2/3), plus the per-head q and k RMSNorms of head_dim (Qwen3)."""
        return self.norms_per_layer * self.norm_params() + (2 * self.head_dim if self.qk_norm else 0)

    def _latent_norm_params(self) -> int:
        """MLA's RMSNorms on the compressed query and KV latents (counted inside attention_params)."""
        return (self.q_lora_rank + self.kv_lora_rank) if self.is_mla else 0

    def attention_params(self) -> int:
        """Projection weights of one attention block (Vaswani et al. 2017; GQA: Ainslie et al. 2023;
        MLA: DeepSeek-V2 report, Sec. 2.1, with low-rank query and joint KV compression)."""
        d, h = self.d_model, self.n_heads
        if self.is_mla:
            qk = self.qk_head_dim
            if self.q_lora_rank:
                q = d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * qk  # down, norm, up
            else:
                q = d * h * qk
            kv_down = d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_up = self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
            out = h * self.v_head_dim * d
            # attention_bias in transformers' DeepseekV2/V3Attention: q_a_proj, kv_a_proj_with_mqa, o_proj.
            biases = ((self.q_lora_rank + self.kv_lora_rank + self.qk_rope_head_dim) if self.qkv_bias else 0) + (
                d if self.o_bias else 0)
            return q + kv_down + kv_up + out + biases
        hd, kv = self.head_dim, self.n_kv_heads
        weights = d * h * hd + 2 * d * kv * hd + h * hd * d
        biases = ((h * hd + 2 * kv * hd) if self.bias or self.qkv_bias else 0) + (d if self.bias or self.o_bias else 0)
        return weights + biases

    def mlp_params(self, width: int) -> int:
        """One MLP of hidden ``width``: two matrices (GELU) or three (gated SwiGLU, Shazeer 2020)."""
        d, bias = self.d_model, self.bias or self.mlp_bias
        if self.gated:
            return 3 * d * width + ((2 * width + d) if bias else 0)
        return 2 * d * width + ((width + d) if bias else 0)

    def moe_params(self, *, active: bool) -> int:
        """Experts of one MoE layer plus the router (Fedus et al. 2022; DeepSeekMoE shared experts).
        ``active``: only the top-k routed and the shared experts that one token passes through."""
        routed = self.top_k if active else self.n_experts
        experts = routed * self.mlp_params(self.d_ff_expert) + self.shared_expert_params()
        # DeepSeek-V3's auxiliary-loss-free balancing adds a per-expert bias to the router's scores
        # (e_score_correction_bias, an nn.Parameter in the reference MoEGate).
        router = self.d_model * self.n_experts + (self.n_experts if self.router_bias else 0)
        return experts + router

    def shared_expert_params(self) -> int:
        """The shared experts of one MoE layer, which every token passes through: n_shared_experts MLPs
        of d_ff_expert, or one MLP of d_ff_shared (Qwen2-MoE's shared_expert_intermediate_size) with
        its d_model -> 1 gate."""
        if self.d_ff_shared:
            return self.mlp_params(self.d_ff_shared) + (self.d_model if self.shared_expert_gate else 0)
        return self.n_shared_experts * self.mlp_params(self.d_ff_expert) + (
            self.d_model if self.shared_expert_gate else 0)

    def expert_params_per_layer(self) -> int:
        """Weights of the routed experts in one MoE layer (what decode may or may not read)."""
        return self.n_experts * self.mlp_params(self.d_ff_expert) if self.is_moe else 0

    # ---- FLOPs -----------------------------------------------------------------------------
    def attention_flops_forward_per_token(self, seq_len: int) -> float:
        """Forward FLOPs of the score and value products for one token attending to ``seq_len``
        positions: 2·L·H·(d_qk + d_v)·T. Counted over the full (not causal-halved) window, as PaLM's
        MFU accounting does (Chowdhery et al. 2022, App. B: the 12·L·H·Q·T term = 3 × this). With a
        sliding window the span is the layer average of the windowed and the full layers."""
        span = self.cached_positions(seq_len)
        return 2.0 * self.n_layers * self.n_heads * (self.qk_head_dim + self.v_dim) * span

    def training_flops_per_token(self, seq_len: int) -> float:
        """Model FLOPs per trained token: 6·N + 12·L·H·Q·T (PaLM, App. B), N = active matmul weights."""
        return 6.0 * self.params_matmul_active + 3.0 * self.attention_flops_forward_per_token(seq_len)

    # ---- caches ------------------------------------------------------------------------------
    def kv_cache_bytes_per_token(self, bytes_per_value: float) -> float:
        """KV-cache bytes per token: 2·L·H_kv·d_head·bytes (MHA/GQA/MQA); MLA caches one latent of
        kv_lora_rank plus the shared rotary key per layer (DeepSeek-V2 report, Sec. 2.1.2)."""
        if self.is_mla:
            return self.n_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * bytes_per_value
        return 2.0 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_value

    def kv_fraction_per_rank(self, tp: int) -> float:
        """Share of the KV cache each tensor-parallel rank holds: KV heads are split over ranks and
        replicated when there are fewer heads than ranks (ceil(H_kv/tp)/H_kv, as Megatron-LM and vLLM
        do); MLA's single latent is replicated on every rank."""
        if self.is_mla:
            return 1.0
        return -(-self.n_kv_heads // tp) / self.n_kv_heads

    def cached_positions(self, seq_len: int) -> float:
        """Positions a sequence keeps in its KV cache, averaged over layers: a sliding window caps the
        windowed layers; ``full_attention_layers`` (Gemma 2's every other, Gemma 3's one in six) keep
        all (times kv_cache_bytes_per_token, this is the sequence's exact cache)."""
        if not self.sliding_window:
            return seq_len
        windowed = min(seq_len, self.sliding_window)
        if not self.full_attention_layers:
            return windowed
        full = self.full_attention_layers
        return (full * seq_len + (self.n_layers - full) * windowed) / self.n_layers

    def causal_pairs(self, prompt_tokens: int) -> float:
        """(query, key) pairs of a causal prefill of ``prompt_tokens``, averaged over layers: p(p+1)/2
        for full attention, and beyond a sliding window w each position attends to w keys."""
        p = prompt_tokens

        def pairs(w: int) -> float:
            return p * (p + 1) / 2.0 if p <= w else w * (w + 1) / 2.0 + (p - w) * w

        if not self.sliding_window:
            return pairs(p)
        full = self.full_attention_layers
        return (full * pairs(p) + (self.n_layers - full) * pairs(self.sliding_window)) / self.n_layers

    def summary(self) -> dict:
        """A JSON-ready description: the architecture and its derived counts."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["attention"] = "mla" if self.is_mla else (
            "mqa" if self.n_kv_heads == 1 else "gqa" if self.n_kv_heads < self.n_heads else "mha"
        )
        return out
