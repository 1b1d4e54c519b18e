"""The modules that get exported: the lab model as an ONNX decoder with past/present key-value tensors,
and its attention core alone.

Two graph flavours, the same function:
- ``fused`` (for onnxruntime): each layer's rotary positions, grouped-query attention and KV-cache append
  are one ``com.microsoft.GroupQueryAttention`` contrib op (onnxruntime's fused CPU/CUDA kernel, the one
  onnxruntime-genai runs decoders on), emitted with ``torch.onnx.ops.symbolic_multi_out``. Its eager
  PyTorch value is a placeholder, so these graphs are only ever judged by running them in onnxruntime
  against the real PyTorch model (the export's parity run).
- ``portable`` (for TensorRT and any ONNX runtime): standard ONNX ops only (TensorRT's parser knows no
  com.microsoft ops): rotary as Mul/Add, KV append as Concat, attention as MatMul/Softmax with an
  explicit causal mask aligned to the end of the cache.

Precision: in fp16/bf16 graphs the normalisations and the softmax are computed in fp32 (fp16 overflows in
sums of squares and exp; TensorRT 10 networks are strongly typed, so the casts must be in the graph).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GRAPHS = ("fused", "portable")
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _norm_fp32(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's RMSNorm/LayerNorm computed in fp32, cast back to x's dtype."""
    xf = x.float()
    if isinstance(norm, nn.RMSNorm):
        y = F.rms_norm(xf, norm.normalized_shape, norm.weight.float(), norm.eps)
    else:
        bias = None if norm.bias is None else norm.bias.float()
        y = F.layer_norm(xf, norm.normalized_shape, norm.weight.float(), bias, norm.eps)
    return y.to(x.dtype)


def _gqa(attn, q, k, v, past_k, past_v, cos, sin, total: torch.Tensor):
    """com.microsoft.GroupQueryAttention: q [B,T,H*hd], k/v [B,T,Hkv*hd], past [B,Hkv,P,hd] (or None);
    returns y [B,T,H*hd] and the present cache [B,Hkv,P+T,hd]. ``total`` is P+T as an int32 scalar;
    seqlens_k (every sequence full length) is total-1. Rotary is applied inside (do_rotary)."""
    b, t = q.shape[0], q.shape[1]
    p = 0 if past_k is None else past_k.shape[2]
    seqlens = (total - 1).reshape(1).expand(b).to(torch.int32)
    rope = cos is not None
    attrs = {"num_heads": attn.n_heads, "kv_num_heads": attn.n_kv_heads, "scale": 1.0 / math.sqrt(attn.head_dim),
             "do_rotary": int(rope), "rotary_interleaved": 0}
    inputs = [q, k, v, past_k, past_v, seqlens, total.reshape(()).to(torch.int32)] + ([cos, sin] if rope else [])
    y, pk, pv = torch.onnx.ops.symbolic_multi_out(
        "com.microsoft::GroupQueryAttention", inputs, attrs,
        dtypes=(q.dtype, k.dtype, v.dtype),
        shapes=([b, t, attn.n_heads * attn.head_dim], [b, attn.n_kv_heads, p + t, attn.head_dim],
                [b, attn.n_kv_heads, p + t, attn.head_dim]),
        version=1)
    return y, pk, pv


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _portable_attention(attn, q, k, v, past_k, past_v, cos, sin):
    """Standard-op attention: q [B,T,H*hd] etc.; rotary with tables for positions P..P+T-1 (cos/sin
    [T,hd]); softmax in fp32; query i sees cache positions 0..P+i. Returns y [B,T,H*hd], present k/v."""
    b, t = q.shape[0], q.shape[1]
    hd, h, hk = attn.head_dim, attn.n_heads, attn.n_kv_heads
    q = q.view(b, t, h, hd).transpose(1, 2)
    k = k.view(b, t, hk, hd).transpose(1, 2)
    v = v.view(b, t, hk, hd).transpose(1, 2)
    if cos is not None:
        q, k = _rotate(q, cos, sin).to(q.dtype), _rotate(k, cos, sin).to(k.dtype)
    if past_k is not None:
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
    present_k, present_v = k, v
    if hk != h:
        k, v = k.repeat_interleave(h // hk, dim=1), v.repeat_interleave(h // hk, dim=1)
    total = k.shape[2]
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    rows = torch.arange(t, device=q.device).unsqueeze(1) + (total - t)
    allowed = torch.arange(total, device=q.device).unsqueeze(0) <= rows
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    y = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, h * hd)
    return y, present_k, present_v


class Decoder(nn.Module):
    """The lab Transformer as an ONNX decoder.

    Language model: ``forward(input_ids [B,T] int64, past_key_0, past_value_0, ...)`` → ``logits [B,T,V]``
    (fp32) and ``present_key_0, present_value_0, ...`` [B,Hkv,P+T,hd]: pass a cache of length 0 for a
    full-sequence forward. Classifier: ``forward(input_ids)`` → ``logits [B,n_classes]`` (mean pool).
    """

    def __init__(self, model, graph: str = "fused", dtype: str = "fp32"):
        super().__init__()
        if graph not in GRAPHS:
            raise ValueError(graph)
        self.m = model
        self.graph = graph
        self.cfg = model.cfg
        self.dtype = TORCH_DTYPES[dtype]
        self.rope = self.cfg.position == "rope"
        if self.rope:
            half = self.cfg.head_dim // 2
            # GroupQueryAttention takes half-width tables [max_positions, hd/2]; the portable graph the full ones
            self.register_buffer("cos_half", model.rope_cos[:, :half].to(self.dtype).clone(), persistent=False)
            self.register_buffer("sin_half", model.rope_sin[:, :half].to(self.dtype).clone(), persistent=False)
            self.register_buffer("cos_full", model.rope_cos.to(self.dtype).clone(), persistent=False)
            self.register_buffer("sin_full", model.rope_sin.to(self.dtype).clone(), persistent=False)

    @property
    def lm(self) -> bool:
        return not self.cfg.n_classes

    def forward(self, input_ids: torch.Tensor, *past: torch.Tensor):
        m = self.m
        b, t = input_ids.shape
        p = past[0].shape[2] if past else 0
        x = m.tok_emb(input_ids).to(self.dtype)
        if m.pos_emb is not None:
            x = x + m.pos_emb(torch.arange(t, device=input_ids.device) + p).to(self.dtype)
        total = input_ids.new_ones(()) * (p + t)  # P+T as a graph value (a symbolic size at export)
        presents = []
        for i, block in enumerate(m.blocks):
            a = block.attn
            h = _norm_fp32(block.norm1, x)
            q, k, v = a.q_proj(h), a.k_proj(h), a.v_proj(h)
            pk, pv = (past[2 * i], past[2 * i + 1]) if past else (None, None)
            if self.graph == "fused":
                cos, sin = (self.cos_half, self.sin_half) if self.rope else (None, None)
                y, nk, nv = _gqa(a, q, k, v, pk, pv, cos, sin, total)
            else:
                cos, sin = (self.cos_full[p:p + t], self.sin_full[p:p + t]) if self.rope else (None, None)
                y, nk, nv = _portable_attention(a, q, k, v, pk, pv, cos, sin)
            presents += [nk, nv]
            x = x + a.o_proj(y)
            x = x + block.mlp(_norm_fp32(block.norm2, x))
        hid = _norm_fp32(m.norm, x)
        if not self.lm:
            return m.classifier(hid.float().mean(dim=1).to(self.dtype)).float()
        logits = F.linear(hid, m.tok_emb.weight.to(self.dtype)).float()
        return (logits, *presents)


class AttentionCore(nn.Module):
    """One ``CausalSelfAttention`` (projections, rotary, grouped-query causal attention, output projection)
    on x [B,T,d_model] → [B,T,d_model], positions 0..T-1."""

    def __init__(self, model, graph: str = "fused", dtype: str = "fp32", layer: int = 0):
        super().__init__()
        self.a = model.blocks[layer].attn
        self.graph = graph
        self.dtype = TORCH_DTYPES[dtype]
        self.rope = model.cfg.position == "rope"
        if self.rope:
            half = model.cfg.head_dim // 2
            self.register_buffer("cos_half", model.rope_cos[:, :half].to(self.dtype).clone(), persistent=False)
            self.register_buffer("sin_half", model.rope_sin[:, :half].to(self.dtype).clone(), persistent=False)
            self.register_buffer("cos_full", model.rope_cos.to(self.dtype).clone(), persistent=False)
            self.register_buffer("sin_full", model.rope_sin.to(self.dtype).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a
        t = x.shape[1]
        q, k, v = a.q_proj(x), a.k_proj(x), a.v_proj(x)
        if self.graph == "fused":
            cos, sin = (self.cos_half, self.sin_half) if self.rope else (None, None)
            total = torch.ones((), dtype=torch.int64, device=x.device) * t
            y, _, _ = _gqa(a, q, k, v, None, None, cos, sin, total)
        else:
            cos, sin = (self.cos_full[:t], self.sin_full[:t]) if self.rope else (None, None)
            y, _, _ = _portable_attention(a, q, k, v, None, None, cos, sin)
        return a.o_proj(y)


def attention_reference(model, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """The PyTorch attention core itself (the lab's CausalSelfAttention with SDPA), for parity and benchmarks."""
    cfg = model.cfg
    t = x.shape[1]
    cos, sin = (model.rope_cos[:t], model.rope_sin[:t]) if cfg.position == "rope" else (None, None)
    return model.blocks[layer].attn(x, cos, sin)
