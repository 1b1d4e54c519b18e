"""Helpers for the meta-device parity tests: small random configs of every supported model_type, and
the parameter count of the transformers model built from a config on the meta device."""

from __future__ import annotations

import random


def transformers_params(config: dict) -> int:
    """``sum(p.numel())`` of the transformers causal LM built from ``config`` on the meta device (no
    memory, no weights), plus DeepSeek-V3's router ``e_score_correction_bias``: a persistent buffer in
    transformers 5 (it is in the checkpoint) and an nn.Parameter in DeepSeek's own code."""
    import torch
    import transformers

    cfg = dict(config)
    mtype = cfg.pop("model_type")
    if mtype == "gemma3" and "text_config" in cfg:
        cfg, mtype = dict(cfg["text_config"]), "gemma3_text"
        cfg.pop("model_type", None)
    hf = transformers.AutoConfig.for_model(mtype, **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf)
    total = sum(p.numel() for p in model.parameters())
    total += sum(b.numel() for name, b in model.named_buffers() if name.endswith("e_score_correction_bias"))
    return int(total)


def random_config(mtype: str, rng: random.Random) -> dict:
    """A small config of ``mtype`` exercising its options (biases, ties, windows, MoE placement)."""
    heads = rng.choice([2, 4, 8])
    kv = rng.choice([k for k in (1, 2, 4, 8) if heads % k == 0])
    head_dim = rng.choice([8, 16])
    d = heads * head_dim if rng.random() < 0.5 else rng.choice([24, 40, 64])
    cfg = {
        "model_type": mtype, "hidden_size": d, "num_hidden_layers": rng.randint(1, 7),
        "num_attention_heads": heads, "num_key_value_heads": kv, "intermediate_size": rng.choice([32, 48, 80]),
        "vocab_size": rng.choice([97, 128, 301]), "max_position_embeddings": rng.choice([256, 1024]),
        "tie_word_embeddings": rng.random() < 0.5, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    }
    if d % heads or (d // heads) % 2 or mtype in ("qwen3", "qwen3_moe", "gemma2", "gemma3_text", "glm") or rng.random() < 0.5:
        cfg["head_dim"] = head_dim
    if mtype in ("llama", "qwen3", "qwen3_moe", "gemma2", "gemma3_text", "glm", "deepseek_v2", "deepseek_v3"):
        cfg["attention_bias"] = rng.random() < 0.5
    if mtype == "llama":
        cfg["mlp_bias"] = rng.random() < 0.5
    if mtype in ("mistral", "mixtral", "phi3", "gemma2", "gemma3_text"):
        cfg["sliding_window"] = rng.choice([None, 16, 64])
    if mtype in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        cfg.update(use_sliding_window=rng.random() < 0.5, sliding_window=32, max_window_layers=rng.randint(0, 4))
    if mtype in ("phi3", "glm"):
        cfg["partial_rotary_factor"] = rng.choice([0.5, 1.0])
    if mtype == "mixtral":
        cfg.update(num_local_experts=rng.randint(2, 6), num_experts_per_tok=2)
    if mtype in ("qwen2_moe", "qwen3_moe"):
        layers = cfg["num_hidden_layers"]
        cfg.update(num_experts=rng.randint(2, 6), num_experts_per_tok=2, moe_intermediate_size=rng.choice([8, 24]),
                   decoder_sparse_step=rng.choice([1, 2]),
                   mlp_only_layers=sorted(rng.sample(range(layers), rng.randint(0, min(2, layers)))))
        if mtype == "qwen2_moe":
            cfg.update(shared_expert_intermediate_size=rng.choice([16, 40]), qkv_bias=rng.random() < 0.7)
    if mtype in ("deepseek_v2", "deepseek_v3"):
        cfg.update(n_routed_experts=rng.choice([4, 8]), num_experts_per_tok=2, moe_intermediate_size=rng.choice([8, 24]),
                   n_shared_experts=rng.randint(1, 2), first_k_dense_replace=rng.randint(0, 2),
                   kv_lora_rank=rng.choice([8, 16]), q_lora_rank=rng.choice([None, 12]), qk_nope_head_dim=8,
                   qk_rope_head_dim=rng.choice([4, 8]), v_head_dim=rng.choice([8, 16]), n_group=1, topk_group=1)
    return cfg
