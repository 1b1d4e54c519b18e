"""A small decoder-only Transformer you can read in one sitting: the model the lab trains and exports.

Built from the literature, not from any one codebase:
- causal self-attention through ``scaled_dot_product_attention`` (Vaswani et al. 2017, eq. 1), with
  grouped-query attention (Ainslie et al. 2023: ``n_kv_heads`` ≤ ``n_heads`` key/value heads, each
  shared by ``n_heads / n_kv_heads`` query heads);
- rotary positions (Su et al. 2021, RoFormer eq. 34, the "rotate half" pairing used by GPT-NeoX) or
  learned absolute positions (Radford et al. 2019);
- pre-norm blocks (Xiong et al. 2020) with LayerNorm or RMSNorm (Zhang & Sennrich 2019), and a GELU
  MLP or a gated SwiGLU MLP (Shazeer 2020);
- a language-model head tied to the token embedding (Press & Wolf 2017) and a sequence-classification
  head over the mean of the final hidden states of the real (unpadded) tokens;
- GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2·n_layers).

Export: ``forward`` has no data-dependent Python control flow (every branch depends on the config or
on whether an argument is ``None``), so ``torch.onnx.export`` and tracing follow it. Generation uses a
KV cache through :meth:`Transformer.decode_step`, kept apart from ``forward``.

The parameter count is exactly :meth:`ModelConfig.model_spec` ``.params_total`` (a test holds
``sum(p.numel())`` equal to the estimator's count for every preset), so the cost estimator and the
lab talk about the same model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ValidationError, require_choice, require_number
from engine.estimate.architecture import FFN_KINDS, NORM_KINDS, POSITION_KINDS, ModelSpec


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and choices of a lab model (validated on construction)."""

    vocab_size: int
    context: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_ff: int
    ffn: str = "swiglu"          # "gelu" | "swiglu"
    position: str = "rope"       # "learned" | "rope"
    norm: str = "rmsnorm"        # "layernorm" | "rmsnorm"
    bias: bool = False           # biases on the linear layers (LayerNorm always has one)
    dropout: float = 0.0
    tied_embeddings: bool = True
    n_classes: int = 0           # 0: language model; ≥ 2: sequence classifier
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff"):
            object.__setattr__(self, name, require_number(name, getattr(self, name), low=1, high=1e6, integer=True))
        object.__setattr__(self, "n_classes", require_number("n_classes", self.n_classes, low=0, high=1e6, integer=True))
        object.__setattr__(self, "dropout", require_number("dropout", self.dropout, low=0, high=1, low_inclusive=True))
        if self.dropout >= 1:
            raise ValidationError(f"dropout must be below 1, got {self.dropout}")
        require_choice("ffn", self.ffn, FFN_KINDS)
        require_choice("position", self.position, POSITION_KINDS)
        require_choice("norm", self.norm, NORM_KINDS)
        if self.n_classes == 1:
            raise ValidationError("n_classes must be 0 (language model) or at least 2, got 1")
        if self.d_model % self.n_heads:
            raise ValidationError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_kv_heads > self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValidationError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if self.position == "rope" and self.head_dim % 2:
            raise ValidationError(f"rotary positions need an even head width, got {self.head_dim}")
        if not self.tied_embeddings:
            raise ValidationError("lab models tie the LM head to the token embedding (tied_embeddings = true)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def task(self) -> str:
        return "classify" if self.n_classes else "lm"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise ValidationError("a model config must be a mapping of fields")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**data)

    def model_spec(self) -> ModelSpec:
        """The same model as the cost estimator describes it (exact parameter and FLOP counts)."""
        return ModelSpec(
            n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
            d_ff=self.d_ff, vocab_size=self.vocab_size, ffn=self.ffn, tied_embeddings=True,
            position=self.position, norm=self.norm, bias=self.bias, dropout=self.dropout > 0,
            context=self.context, id="lab", name="lab model",
        )

    def expected_params(self) -> int:
        """Parameters of :class:`Transformer` built from this config: the estimator's count, plus the
        classification head (a d_model × n_classes matrix and its bias) for a classifier."""
        extra = self.d_model * self.n_classes + self.n_classes if self.n_classes else 0
        return self.model_spec().params_total + extra


class _RMSNormFunction(torch.autograd.Function):
    """RMSNorm y = x / rms(x) · w (Zhang & Sennrich 2019, eq. 4) that keeps only its input and the
    per-row 1/rms for backward, as a fused kernel does. Eager ``F.rms_norm`` on the CPU is composed of
    elementwise ops and also keeps the normalized x/rms(x), one more activation the size of the input
    per norm than Korthikanti et al. 2022 count (their LayerNorm keeps its input only)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        acc = torch.promote_types(x.dtype, torch.float32)  # 16-bit inputs are normalized in fp32
        xf = x.to(acc)
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd * weight.to(acc)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        acc = rstd.dtype
        xhat = x.to(acc) * rstd
        g = grad.to(acc)
        gw = g * weight.to(acc)
        # d/dx of x·r(x)·w with r = (mean(x²) + eps)^-1/2: r·(gw − xhat·mean(gw·xhat))
        dx = rstd * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        dw = (g * xhat).reshape(-1, x.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        return dx.to(x.dtype), None if dw is None else dw.to(weight.dtype), None


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` (same weights and state dict) whose training pass saves only what a fused kernel
    saves (:class:`_RMSNormFunction`); inference and export take ``nn.RMSNorm``'s own path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.weight is not None and (x.requires_grad or self.weight.requires_grad):
            return _RMSNormFunction.apply(x, self.weight, self.eps)
        return super().forward(x)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through ``torch.native_dropout``, which keeps a 1-byte boolean mask for backward
    on every device (Korthikanti et al. 2022 count 1 byte per dropout mask); ``F.dropout`` on the CPU
    keeps a mask in the input's dtype (4 bytes in fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.p > 0:
            return torch.native_dropout(x, self.p, True)[0]
        return x


def _norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, eps=1e-6)
    return nn.LayerNorm(cfg.d_model, eps=1e-5)


def rotary_tables(context: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [context, head_dim] for rotary positions (RoFormer eq. 34: frequency
    θ_i = base^(-2i/d), each repeated for the two halves that ``rotate_half`` pairs up)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate query/key features [B, H, T, D] by their positions' angles (cos/sin: [T, D])."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class CausalSelfAttention(nn.Module):
    """The attention core: multi-head causal self-attention with grouped-query key/value heads.

    ``forward(x, cos, sin)`` attends causally within ``x``. With ``past`` (cached keys and values of
    earlier positions) the new queries attend to every cached position and causally among themselves;
    ``use_cache`` also returns the keys and values to cache: the path generation takes.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.rotary = cfg.position == "rope"
        self.dropout = cfg.dropout
        d, hd = cfg.d_model, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=cfg.bias)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.bias)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.n_heads * hd, d, bias=cfg.bias)

    def _heads(self, x: torch.Tensor, proj: nn.Linear, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return proj(x).view(b, t, n, self.head_dim).transpose(1, 2)  # [B, n, T, hd]

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor | None = None,
        sin: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, _ = x.shape
        q = self._heads(x, self.q_proj, self.n_heads)
        k = self._heads(x, self.k_proj, self.n_kv_heads)
        v = self._heads(x, self.v_proj, self.n_kv_heads)
        if self.rotary:
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        # Each KV head is shared by its group of query heads inside the kernel (enable_gqa): no
        # repeated copies of K and V are made, or kept for backward.
        gqa = self.n_kv_heads != self.n_heads
        dropout = self.dropout if self.training else 0.0
        if past is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, enable_gqa=gqa)
        elif t == 1:  # one new query (a decode step) sees every key: no mask to build or apply
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, enable_gqa=gqa)
        else:
            # New queries sit at the end: query i may see every cached key and new keys up to itself.
            total = k.shape[2]
            rows = torch.arange(t, device=x.device).unsqueeze(1) + (total - t)
            allowed = torch.arange(total, device=x.device).unsqueeze(0) <= rows
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout, enable_gqa=gqa)
        y = self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        return (y, present) if use_cache else y


class MLP(nn.Module):
    """GELU MLP (two matrices) or gated SwiGLU MLP (three matrices, Shazeer 2020 eq. 6)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gated = cfg.ffn == "swiglu"
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias) if self.gated else None
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.attn = _norm(cfg), CausalSelfAttention(cfg)
        self.norm2, self.mlp = _norm(cfg), MLP(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cos, sin))
        return x + self.drop(self.mlp(self.norm2(x)))

    def step(self, x, cos, sin, past):
        """Like forward, with a KV cache (generation)."""
        y, present = self.attn(self.norm1(x), cos, sin, past, use_cache=True)
        x = x + y
        return x + self.mlp(self.norm2(x)), present


class Transformer(nn.Module):
    """Token embedding → n_layers pre-norm blocks → final norm → tied LM head or classification head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model) if cfg.position == "learned" else None
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = _norm(cfg)
        if cfg.n_classes:
            self.classifier = nn.Linear(cfg.d_model, cfg.n_classes)
        else:
            self.classifier = None
        if cfg.position == "rope":
            cos, sin = rotary_tables(cfg.context, cfg.head_dim, cfg.rope_base)
            # Not persistent: derived from the config, so checkpoints hold only learned weights.
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by 1/sqrt(2L)
            if name.endswith(("attn.o_proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Distinct parameters (the tied head is the embedding, counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + idx.shape[1], device=idx.device))
        return self.drop(x)

    def _rope(self, start: int, length: int):
        if self.cfg.position != "rope":
            return None, None
        return self.rope_cos[start:start + length], self.rope_sin[start:start + length]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states [B, T, d_model] for token ids [B, T] (T ≤ context)."""
        x = self._embed(idx)
        cos, sin = self._rope(0, idx.shape[1])
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits: [B, T, vocab] for a language model; [B, n_classes] for a classifier, pooled over
        the positions where ``mask`` is true (all positions when ``mask`` is None)."""
        h = self.hidden(idx)
        if self.classifier is None:
            return F.linear(h, self.tok_emb.weight)
        if mask is None:
            pooled = h.mean(dim=1)
        else:
            weights = mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.classifier(pooled)

    # ---- generation with a KV cache --------------------------------------------------------------
    def decode_step(self, idx: torch.Tensor, past: list | None, start: int):
        """Logits for the last position of ``idx`` (new tokens at positions start..) and the cache."""
        x = self._embed(idx, start)
        cos, sin = self._rope(start, idx.shape[1])
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block.step(x, cos, sin, None if past is None else past[i])
            presents.append(present)
        return F.linear(self.norm(x[:, -1:]), self.tok_emb.weight)[:, -1], presents

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of ``idx`` [B, T] (temperature 0: greedy). The KV
        cache is rebuilt from the last ``context`` tokens whenever the sequence outgrows the context."""
        if self.classifier is not None:
            raise ValidationError("generate needs a language model, not a classifier")
        was_training = self.training
        self.eval()
        context = self.cfg.context
        out = idx
        past, length = None, 0
        for _ in range(int(max_new_tokens)):
            if past is None or length >= context:
                window = out[:, -context + 1:] if out.shape[1] >= context else out
                logits, past = self.decode_step(window, None, 0)
                length = window.shape[1]
            else:
                logits, past = self.decode_step(out[:, -1:], past, length)
                length += 1
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits.float() / temperature
                if top_k:
                    kth = torch.topk(logits, min(int(top_k), logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
        self.train(was_training)
        return out


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) over [B, T] targets, computed in float32."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=ignore_index)


def configure_optimizer(
    model: nn.Module, lr: float, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on matrices only (weights with
    ≥ 2 dimensions); norms, biases and nothing else go undecayed. Fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device_type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
