"""Hugging Face ``config.json`` -> :class:`ModelSpec`, exactly: the parameter count equals
``sum(p.numel() for p in model.parameters())`` of the transformers model built from the same config
(tests/estimate/test_hf_config.py builds each on the meta device).

Public API (no network, no transformers needed):

- ``load_hf_config(source, *, id=None, name=None) -> ModelSpec``: a path to a config.json, a folder
  holding one, JSON text or bytes, or an already parsed mapping;
- ``params_from_hf_config(source) -> dict``: ``params_total``, ``params_active`` and ``spec``;
- ``read_hf_config(source) -> dict``: the parsed config (size limit, one-line errors);
- ``SUPPORTED_MODEL_TYPES``.

Every problem is one ValidationError line: unknown model_type (naming the supported ones), an encoder
model, malformed JSON, missing fields (named), a folder without config.json, absurd values (checked
before any arithmetic), a file over 1 MB.

The mapping follows transformers 5.25's modelling files (``src/transformers/models/<type>/``,
https://github.com/huggingface/transformers):

- ``modeling_llama.py``: q/k/v/o biases from ``attention_bias``, MLP biases from ``mlp_bias``;
- ``modeling_mistral.py``, ``modeling_mixtral.py``: no biases; ``sliding_window`` on every layer;
  Mixtral's router is a (num_local_experts, hidden) weight, experts of ``intermediate_size``;
- ``modeling_qwen2.py``: biases on q/k/v only (``bias=True``), none on o_proj; sliding windows only
  with ``use_sliding_window``, on layers >= ``max_window_layers`` (or as ``layer_types`` says);
- ``modeling_qwen2_moe.py``: q/k/v biases from ``qkv_bias``; one shared expert of
  ``shared_expert_intermediate_size`` with a hidden -> 1 ``shared_expert_gate``; layer i is MoE when
  i not in ``mlp_only_layers`` and (i + 1) % ``decoder_sparse_step`` == 0, else a dense MLP of
  ``intermediate_size``;
- ``modeling_qwen3.py``, ``modeling_qwen3_moe.py``: q/k/v/o biases from ``attention_bias``, per-head
  ``q_norm``/``k_norm`` RMSNorms of ``head_dim``; Qwen3-MoE places layers as Qwen2-MoE, no shared expert;
- ``modeling_deepseek_v2.py``, ``modeling_deepseek_v3.py``: MLA (``q_lora_rank`` null: a full q_proj),
  ``attention_bias`` on q_a_proj, kv_a_proj_with_mqa and o_proj; layers >= ``first_k_dense_replace``
  are MoE with ``n_shared_experts`` × ``moe_intermediate_size`` shared; V3's router has the
  ``e_score_correction_bias`` (a persistent buffer in transformers 5, an nn.Parameter in DeepSeek's
  own modeling_deepseek.py; it is in the checkpoint, so it is counted);
- ``modeling_gemma2.py``, ``modeling_gemma3.py`` (Gemma3ForCausalLM): four RMSNorms per layer,
  q/k/v/o biases from ``attention_bias``, tied embeddings by default, ``head_dim`` 256 by default;
  Gemma 2 alternates sliding and full layers (even layers slide), Gemma 3 has one full layer in
  ``sliding_window_pattern`` (6); Gemma 3 adds q/k norms. A multimodal ``gemma3`` config is read from
  its ``text_config``: the language model only, without the vision tower;
- ``modeling_phi3.py``: fused qkv_proj and gate_up_proj (the same counts as separate ones), no
  biases, ``sliding_window`` on every layer, ``partial_rotary_factor``;
- ``modeling_glm.py`` (GLM-4 in transformers' format, e.g. THUDM/glm-4-9b-chat-hf): q/k/v biases from
  ``attention_bias`` (default true), none on o_proj, fused gate_up_proj, partial rotary 0.5.

Gemma's GeGLU is counted as ``ffn = "swiglu"``: a gated MLP of three matrices either way, the
activation changes neither counts nor memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ValidationError, require_number
from engine.estimate.architecture import ModelSpec

CONFIG_MAX_BYTES = 1_000_000
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
                         "deepseek_v2", "deepseek_v3", "gemma2", "gemma3_text", "phi3", "glm")
ENCODER_MODEL_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
    "modernbert", "camembert", "t5", "mt5", "umt5", "bart", "mbart", "pegasus", "marian", "longt5",
    "switch_transformers", "nllb-moe", "whisper", "mpnet", "ernie", "xlnet",
})
_MOE = {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3"}
_MLA = {"deepseek_v2", "deepseek_v3"}
# Defaults of transformers 5.25's configuration_<type>.py where a config.json leaves a field out.
_TIED_DEFAULT = {"gemma2": True, "gemma3_text": True}
_HEAD_DIM_DEFAULT = {"qwen3": 128, "gemma2": 256, "gemma3_text": 256, "glm": 128}
_SLIDING_DEFAULT = {"mistral": 4096, "gemma2": 4096, "gemma3_text": 4096}
# Bounds checked before any arithmetic (far above any released model, far below nonsense).
_LIMITS = {
    "hidden_size": 1_000_000, "num_hidden_layers": 10_000, "num_attention_heads": 100_000,
    "num_key_value_heads": 100_000, "intermediate_size": 10_000_000, "vocab_size": 10_000_000,
    "max_position_embeddings": 10_000_000, "head_dim": 100_000, "moe_intermediate_size": 10_000_000,
    "shared_expert_intermediate_size": 10_000_000, "num_experts": 100_000, "num_local_experts": 100_000,
    "n_routed_experts": 100_000, "num_experts_per_tok": 100_000, "n_shared_experts": 1_000,
    "first_k_dense_replace": 10_000, "decoder_sparse_step": 10_000, "kv_lora_rank": 1_000_000,
    "q_lora_rank": 1_000_000, "qk_nope_head_dim": 100_000, "qk_rope_head_dim": 100_000,
    "v_head_dim": 100_000, "sliding_window": 100_000_000, "max_window_layers": 10_000,
    "sliding_window_pattern": 10_000,
}
_BASE_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "vocab_size", "max_position_embeddings")
_TYPE_REQUIRED = {
    "mixtral": ("num_local_experts", "num_experts_per_tok"),
    "qwen2_moe": ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size"),
    "qwen3_moe": ("num_experts", "num_experts_per_tok", "moe_intermediate_size"),
    "deepseek_v2": ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "kv_lora_rank",
                    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"),
    "deepseek_v3": ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "kv_lora_rank",
                    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"),
}


def read_hf_config(source: object) -> dict:
    """The parsed config.json from a path (file or folder), JSON text/bytes, or a mapping."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, bytes):
        return _parse(source, "config.json")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return _parse(source.encode("utf-8"), "config.json")
    if not isinstance(source, (str, Path)):
        raise ValidationError(f"a config.json path, JSON text or mapping is required, got {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValidationError(f"folder {str(path)!r} holds no config.json")
        path = path / "config.json"
    try:
        size = path.stat().st_size
        if size > CONFIG_MAX_BYTES:
            raise ValidationError(f"{path.name!r} is {size:,} bytes; a config.json is at most {CONFIG_MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return _parse(raw, path.name)


def _parse(raw: bytes, name: str) -> dict:
    if len(raw) > CONFIG_MAX_BYTES:
        raise ValidationError(f"{name!r} is {len(raw):,} bytes; a config.json is at most {CONFIG_MAX_BYTES:,}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValidationError(f"{name!r} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{name!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{name!r} must hold a JSON object, got {type(data).__name__}")
    return data


def load_hf_config(source: object, *, id: str | None = None, name: str | None = None) -> ModelSpec:
    """The exact architecture of a Hugging Face model from its config.json (see the module doc)."""
    return spec_from_hf_config(read_hf_config(source), id=id, name=name)


def params_from_hf_config(source: object) -> dict:
    """``{"params_total", "params_active", "spec"}`` of a config.json (what ``models --hf-config`` prints)."""
    spec = load_hf_config(source)
    return {"params_total": spec.params_total, "params_active": spec.params_active, "spec": spec.summary()}


def _model_type(cfg: Mapping) -> tuple[str, Mapping]:
    mtype = cfg.get("model_type")
    if not isinstance(mtype, str) or not mtype:
        raise ValidationError(f"config.json has no model_type; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    mtype = mtype.strip().lower()
    if mtype == "gemma3" and isinstance(cfg.get("text_config"), Mapping):
        text = dict(cfg["text_config"])
        text.setdefault("model_type", "gemma3_text")
        return "gemma3_text", text
    if mtype in ENCODER_MODEL_TYPES or cfg.get("is_encoder_decoder") is True:
        raise ValidationError(f"model_type {mtype!r} is not a decoder language model (an encoder or "
                              f"encoder-decoder); supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if mtype not in SUPPORTED_MODEL_TYPES:
        raise ValidationError(f"model_type {mtype!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    return mtype, cfg


def _checked(cfg: Mapping, mtype: str) -> dict:
    """Required fields present, every size a whole number within _LIMITS (before any arithmetic)."""
    required = _BASE_REQUIRED + _TYPE_REQUIRED.get(mtype, ())
    missing = [k for k in required if cfg.get(k) is None]
    if missing:
        raise ValidationError(f"{mtype} config.json is missing {', '.join(missing)}")
    out = {}
    for key, high in _LIMITS.items():
        value = cfg.get(key)
        if value is None:
            continue
        low = 0 if key in ("first_k_dense_replace", "q_lora_rank", "n_shared_experts", "max_window_layers") else 1
        if isinstance(value, bool):
            raise ValidationError(f"{key} must be a whole number, got {value!r}")
        out[key] = require_number(key, value, low=low, high=high, integer=True)
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias", "qkv_bias", "use_sliding_window"):
        if key in cfg and cfg[key] is not None and not isinstance(cfg[key], bool):
            raise ValidationError(f"{key} must be true or false, got {cfg[key]!r}")
    return out


def _layer_kinds(cfg: Mapping, mtype: str, n: dict) -> tuple[int, int]:
    """(sliding_window, full_attention_layers) as transformers' config classes derive layer_types."""
    layers = n["num_hidden_layers"]
    types = cfg.get("layer_types")
    window = n.get("sliding_window", _SLIDING_DEFAULT.get(mtype) if "sliding_window" not in cfg else None)
    if mtype in ("llama", "glm", "deepseek_v2", "deepseek_v3"):
        return 0, 0
    if mtype in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe") and not cfg.get("use_sliding_window", False):
        return 0, 0
    if not window:
        return 0, 0
    if isinstance(types, list):
        if len(types) != layers or not set(types) <= {"full_attention", "sliding_attention"}:
            raise ValidationError(f"layer_types must list {layers} of full_attention / sliding_attention")
        full = types.count("full_attention")
    elif mtype in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        full = min(layers, n.get("max_window_layers", 28))  # layers >= max_window_layers slide
    elif mtype == "gemma2":
        full = layers // 2  # (i + 1) % 2 == 0: the odd layers attend to everything
    elif mtype == "gemma3_text":
        full = layers // n.get("sliding_window_pattern", 6)
    else:  # mistral, mixtral, phi3: every layer slides
        full = 0
    return (0, 0) if full == layers else (window, full)


def _rotary_fraction(cfg: Mapping, mtype: str) -> float:
    value = cfg.get("partial_rotary_factor")
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    if value is None and isinstance(rope, Mapping):
        value = rope.get("partial_rotary_factor")
    if value is None:
        value = 0.5 if mtype == "glm" else 1.0
    return require_number("partial_rotary_factor", value, low=0, high=1, low_inclusive=False)


def _moe_fields(cfg: Mapping, mtype: str, n: dict) -> dict:
    if mtype == "mixtral":
        return dict(n_experts=n["num_local_experts"], top_k=n["num_experts_per_tok"], d_ff_expert=n["intermediate_size"])
    if mtype in ("qwen2_moe", "qwen3_moe"):
        dense = cfg.get("mlp_only_layers") or []
        if not isinstance(dense, list):
            raise ValidationError(f"mlp_only_layers must be a list of layer numbers, got {dense!r}")
        out = dict(n_experts=n["num_experts"], top_k=n["num_experts_per_tok"], d_ff_expert=n["moe_intermediate_size"],
                   moe_layer_step=n.get("decoder_sparse_step", 1), dense_layer_ids=tuple(dense))
        if mtype == "qwen2_moe":
            out.update(n_shared_experts=1, d_ff_shared=n["shared_expert_intermediate_size"], shared_expert_gate=True)
        return out
    if cfg.get("mlp_bias"):
        raise ValidationError(f"{mtype} with mlp_bias=true is not supported (its routed experts carry no bias)")
    return dict(n_experts=n["n_routed_experts"], top_k=n["num_experts_per_tok"], d_ff_expert=n["moe_intermediate_size"],
                n_shared_experts=n.get("n_shared_experts", 2 if mtype == "deepseek_v2" else 1),
                first_dense_layers=min(n["num_hidden_layers"], n.get("first_k_dense_replace", 3 if mtype == "deepseek_v3" else 0)),
                router_bias=mtype == "deepseek_v3")


def _bias_fields(cfg: Mapping, mtype: str) -> dict:
    attention_bias = bool(cfg.get("attention_bias", mtype == "glm"))
    if mtype == "qwen2":
        return dict(qkv_bias=True)
    if mtype == "qwen2_moe":
        return dict(qkv_bias=bool(cfg.get("qkv_bias", True)))
    if mtype == "glm":
        return dict(qkv_bias=attention_bias)
    if mtype in ("mistral", "mixtral", "phi3"):
        return {}
    if mtype == "llama":
        return dict(qkv_bias=attention_bias, o_bias=attention_bias, mlp_bias=bool(cfg.get("mlp_bias", False)))
    return dict(qkv_bias=attention_bias, o_bias=attention_bias)  # qwen3(_moe), gemma2/3, deepseek (MLA)


def spec_from_hf_config(config: Mapping, *, id: str | None = None, name: str | None = None) -> ModelSpec:
    """The ModelSpec of a parsed config.json; ``id``/``name`` default to its name_or_path or type."""
    if not isinstance(config, Mapping):
        raise ValidationError("config.json must hold a JSON object")
    mtype, cfg = _model_type(config)
    n = _checked(cfg, mtype)
    heads, d = n["num_attention_heads"], n["hidden_size"]
    kv = n.get("num_key_value_heads", heads)
    if kv > heads or heads % kv:
        raise ValidationError(f"num_key_value_heads ({kv}) must divide num_attention_heads ({heads})")
    head_dim = n.get("head_dim") or _HEAD_DIM_DEFAULT.get(mtype) or 0
    if not head_dim and d % heads:
        raise ValidationError(f"hidden_size ({d}) is not divisible by num_attention_heads ({heads}); give head_dim")
    window, full = _layer_kinds(cfg, mtype, n)
    fields = dict(
        n_layers=n["num_hidden_layers"], d_model=d, n_heads=heads, n_kv_heads=kv, head_dim=head_dim,
        d_ff=n["intermediate_size"], vocab_size=n["vocab_size"], ffn="swiglu", position="rope", norm="rmsnorm",
        tied_embeddings=bool(cfg.get("tie_word_embeddings", _TIED_DEFAULT.get(mtype, False))),
        context=n["max_position_embeddings"], sliding_window=window, full_attention_layers=full,
        rotary_fraction=_rotary_fraction(cfg, mtype), **_bias_fields(cfg, mtype),
    )
    if mtype in ("qwen3", "qwen3_moe", "gemma3_text"):
        fields["qk_norm"] = True
    if mtype in ("gemma2", "gemma3_text"):
        fields["norms_per_layer"] = 4
    if mtype in _MOE:
        fields.update(_moe_fields(cfg, mtype, n))
        if fields["n_experts"] and fields["top_k"] > fields["n_experts"]:
            raise ValidationError(f"num_experts_per_tok ({fields['top_k']}) exceeds the {fields['n_experts']} experts")
    if mtype in _MLA:
        rope, nope = n["qk_rope_head_dim"], n["qk_nope_head_dim"]
        fields.update(n_kv_heads=heads, q_lora_rank=n.get("q_lora_rank", 0 if "q_lora_rank" in cfg else 1536),
                      kv_lora_rank=n["kv_lora_rank"], qk_nope_head_dim=nope, qk_rope_head_dim=rope,
                      v_head_dim=n["v_head_dim"], rotary_fraction=rope / (nope + rope),
                      head_dim=0 if d % heads == 0 else nope + rope)
    label = str(cfg.get("_name_or_path") or config.get("_name_or_path") or mtype)
    fields.update(id=id or "hf-config", name=name or f"{label} (config.json)", source="Hugging Face config.json")
    return ModelSpec(**fields)
