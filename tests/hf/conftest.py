"""Tiny random Hugging Face checkpoints, built once per session with transformers' own config classes and a
BPE trained here with ``tokenizers`` (engine/lab/hf_random.py): nothing is downloaded."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers", reason="the HF model tests need transformers (the lab extra)")
pytest.importorskip("peft", reason="the HF model tests need peft (the lab extra)")

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

WORDS = ("the cat sat on a mat and the dog ran to the park while birds sang in green trees near old houses "
         "where people read books about rivers stars numbers and friendly machines").split()
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256)


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """A few KB of deterministic text (sentences of a small vocabulary)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + "." for _ in range(n)]


@pytest.fixture(scope="session")
def hf_tokenizer():
    from engine.lab.hf_random import train_tokenizer

    return train_tokenizer(corpus(), vocab_size=300)


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory, hf_tokenizer):
    """model_type -> folder (head size 16: onnxruntime's GroupQueryAttention needs a multiple of 16): qwen2 (chat template), llama (sharded, with an index), gemma2, phi3, qwen3, mistral."""
    from engine.lab.hf_random import build_checkpoint

    root = tmp_path_factory.mktemp("hf-models")
    out = {}
    for mt in ("qwen2", "llama", "gemma2", "phi3", "qwen3", "mistral"):
        extra = {"head_dim": 16} if mt in ("gemma2", "qwen3") else {}
        if mt == "phi3":  # Phi-3-mini-4k: no LongRoPE (onnxruntime-genai builds the short-rope graph)
            extra["original_max_position_embeddings"] = TINY["max_position_embeddings"]
        out[mt] = build_checkpoint(root / mt, mt, hf_tokenizer, seed=1, max_shard_size="40KB" if mt == "llama" else None,
                                   **TINY, **extra)
    return out


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf-data") / "corpus.txt"
    path.write_text("\n".join(corpus(300, seed=1)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def instruct_file(tmp_path_factory):
    import csv
    import random

    rng = random.Random(2)
    path = tmp_path_factory.mktemp("hf-instruct") / "pairs.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        for _ in range(40):
            a = " ".join(rng.choice(WORDS) for _ in range(5))
            w.writerow([f"repeat {a}", a])
    return path
