"""Random-weight Hugging Face checkpoints of a real architecture, built locally (never downloaded): the
test fixtures, and the benchmarks' honest stand-in for a real model (weights do not change the speed).

The config comes from transformers' own config classes, the weights from the model class's
initialisation under a fixed seed, saved with ``save_pretrained`` (safetensors; sharded with an index
when ``max_shard_size`` is given). The tokenizer is a byte-level BPE (Sennrich et al. 2016; GPT-2's
byte-to-unicode pre-tokenizer, Radford et al. 2019) trained with ``tokenizers`` on the given texts,
wrapped as a ``PreTrainedTokenizerFast`` with ChatML special tokens and, optionally, the ChatML chat
template Qwen2.5 ships (https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/tokenizer_config.json,
without its tool-calling branches)."""

from __future__ import annotations

from pathlib import Path

from engine.errors import ValidationError

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CONFIGS = {"qwen2": "Qwen2Config", "qwen3": "Qwen3Config", "llama": "LlamaConfig", "mistral": "MistralConfig",
           "gemma2": "Gemma2Config", "phi3": "Phi3Config"}
# Qwen2.5-0.5B's architecture (https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json, 2024-09).
QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
                  rope_theta=1000000.0, rms_norm_eps=1e-6)


def train_tokenizer(texts: list[str], vocab_size: int = 300, chat: bool = True):
    """A byte-level BPE trained on ``texts``, as a PreTrainedTokenizerFast (ChatML specials, template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=SPECIALS[0], pad_token=SPECIALS[0],
                                   additional_special_tokens=list(SPECIALS[1:]))
    if chat:
        fast.chat_template = CHATML
    return fast


def build_checkpoint(out: str | Path, model_type: str, tokenizer=None, *, seed: int = 0,
                     max_shard_size: str | None = None, **sizes) -> Path:
    """Save a random-weight ``model_type`` model (``sizes``: config fields) and ``tokenizer`` into ``out``."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if model_type not in CONFIGS:
        raise ValidationError(f"model type {model_type!r}: choose one of {', '.join(CONFIGS)}")
    if tokenizer is not None:
        sizes.setdefault("vocab_size", len(tokenizer))
        sizes.setdefault("eos_token_id", tokenizer.eos_token_id)
        sizes.setdefault("bos_token_id", tokenizer.eos_token_id)
        sizes.setdefault("pad_token_id", tokenizer.pad_token_id)
    cfg = getattr(transformers, CONFIGS[model_type])(**sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(out), safe_serialization=True, **kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out
