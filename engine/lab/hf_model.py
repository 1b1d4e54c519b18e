"""A local Hugging Face model folder as the lab's second model kind: inspected, its memory predicted
and checked against this machine, then loaded with transformers, offline.

A folder holds ``config.json``, the weights (``model.safetensors``, or shards named by
``model.safetensors.index.json``), a tokenizer (``tokenizer.json`` and ``tokenizer_config.json``,
which carries the chat template, or a separate ``chat_template.jinja``). Loading follows transformers'
own offline path: ``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)`` with
``HF_HUB_OFFLINE=1`` set (https://huggingface.co/docs/transformers/installation#offline-mode), so
nothing downloads. Pickled ``*.bin`` weights are refused (``use_safetensors=True``).

Supported ``model_type`` values: the decoder LMs whose transformers modelling files the lab's LoRA
targets, the estimator's counts and the ONNX export were checked against (``SUPPORTED``). An encoder
is refused as "not a causal language model"; any other type names the supported ones.

Memory is predicted before anything is loaded (:func:`predict_memory`): the estimator's inference or
fine-tuning memory for the architecture the HF-config importer reads from ``config.json``
(engine/estimate/hf_config.py, exact to the parameter). The figure is compared with the memory available now (``psutil``'s
``available``; ``torch.cuda.mem_get_info`` on CUDA); a model that does not fit is refused in one line
with both figures, rather than letting the process be killed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ValidationError

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3")
# Encoder (or encoder-decoder) families: refused as "not a causal language model".
ENCODERS = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
            "mpnet", "modernbert", "t5", "mt5", "bart", "camembert", "ernie")
# PEFT module names for each LoRA target (engine/estimate/finetune.py names the same layers).
# Phi-3 fuses q, k, v into qkv_proj and gate, up into gate_up_proj (transformers' modeling_phi3.py).
LORA_MODULES = {
    "default": {"qv": ["q_proj", "v_proj"], "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
    "phi3": {"attention": ["qkv_proj", "o_proj"], "all-linear": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]},
}
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class HFFolder:
    """What a model folder holds, read from its files only (no weights loaded)."""

    path: Path
    model_type: str
    config: dict
    weights: tuple[Path, ...]
    sharded: bool
    chat_template: str | None
    vocab_size: int

    def to_dict(self) -> dict:
        return {"path": str(self.path), "model_type": self.model_type, "weights": [p.name for p in self.weights],
                "sharded": self.sharded, "chat_template": self.chat_template is not None,
                "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class MemoryCheck:
    """Predicted bytes for one use of a model beside the bytes available now."""

    purpose: str
    predicted_bytes: float
    available_bytes: float
    device: str
    basis: str
    parts: dict = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.predicted_bytes <= self.available_bytes

    def to_dict(self) -> dict:
        return {"purpose": self.purpose, "predicted_bytes": self.predicted_bytes,
                "available_bytes": self.available_bytes, "device": self.device, "basis": self.basis,
                "fits": self.fits, "parts": dict(self.parts)}


@dataclass
class HFLoaded:
    """A loaded model folder: the transformers model (eval mode), its tokenizer, what the folder holds."""

    model: Any
    tokenizer: Any
    folder: HFFolder
    memory: MemoryCheck | None
    spec: Any | None = None  # the estimator's ModelSpec (engine/estimate/hf_config.py)

    @property
    def chat(self) -> bool:
        return self.folder.chat_template is not None


def offline() -> None:
    """Make every Hugging Face library offline for this process (nothing may download at run time)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{what} {path} cannot be read ({exc})") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{what} {path} is not a JSON object")
    return doc


def _weights(root: Path) -> tuple[tuple[Path, ...], bool]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        doc = _read_json(index, "weight index")
        names = sorted(set((doc.get("weight_map") or {}).values()))
        missing = [n for n in names if not (root / n).is_file()]
        if not names or missing:
            raise ValidationError(f"model folder {root}: the weight index names shards that are not there "
                                  f"({', '.join(missing[:3]) or 'none listed'})")
        return tuple(root / n for n in names), True
    single = root / "model.safetensors"
    if single.is_file():
        return (single,), False
    if any(root.glob("*.bin")) or any(root.glob("*.pt")):
        raise ValidationError(f"model folder {root} has only pickled weights (*.bin/*.pt); the lab loads "
                              "safetensors only (convert them with transformers' save_pretrained)")
    raise ValidationError(f"model folder {root} has no weights (model.safetensors or a sharded "
                          "model.safetensors.index.json)")


def _chat_template(root: Path, tok_cfg: dict) -> str | None:
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    tpl = tok_cfg.get("chat_template")
    if isinstance(tpl, list):  # named templates: the default one
        tpl = next((t.get("template") for t in tpl if isinstance(t, dict) and t.get("name") == "default"), None)
    return tpl if isinstance(tpl, str) and tpl.strip() else None


def inspect_folder(path: str | Path) -> HFFolder:
    """Read a model folder's config, weight list, tokenizer files and chat template; one-line errors for
    a folder that is missing any of them, an encoder, or an unsupported architecture."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValidationError(f"--hf-model {path}: no such folder")
    root = root.resolve()
    if not (root / "config.json").is_file():
        raise ValidationError(f"model folder {root} has no config.json (not a Hugging Face model folder)")
    config = _read_json(root / "config.json", "config")
    model_type = str(config.get("model_type") or "")
    if model_type in ENCODERS or config.get("is_encoder_decoder"):
        raise ValidationError(f"model folder {root} holds {model_type or 'an encoder-decoder'}: not a causal "
                              f"language model (the lab fine-tunes decoders: {', '.join(SUPPORTED)})")
    if model_type not in SUPPORTED:
        raise ValidationError(f"model type {model_type or '(none)'!r} of {root.name} is not supported; "
                              f"supported: {', '.join(SUPPORTED)}")
    weights, sharded = _weights(root)
    if not (root / "tokenizer.json").is_file():
        raise ValidationError(f"model folder {root} has no tokenizer (tokenizer.json); copy the model's "
                              "tokenizer files into it")
    tok_cfg = _read_json(root / "tokenizer_config.json", "tokenizer config") \
        if (root / "tokenizer_config.json").is_file() else {}
    vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise ValidationError(f"config.json of {root.name} has no vocab_size")
    return HFFolder(path=root, model_type=model_type, config=config, weights=weights, sharded=sharded,
                    chat_template=_chat_template(root, tok_cfg), vocab_size=int(vocab))


# ---- memory -------------------------------------------------------------------------------------
def import_spec(folder: HFFolder):
    """The estimator's ModelSpec for this folder: the HF-config importer (engine/estimate/hf_config.py)."""
    from engine.estimate.hf_config import load_hf_config

    return load_hf_config(folder.path / "config.json", id=folder.path.name)


def available_bytes(device: str = "cpu") -> float:
    """Memory this process could still take: psutil's ``available`` (CPU) or the GPU's free bytes."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.mem_get_info()[0])
    import psutil

    return float(psutil.virtual_memory().available)


def predict_memory(folder: HFFolder, purpose: str = "infer", *, dtype: str = "fp32", device: str = "cpu",
                   seq_len: int = 512, batch: int = 1, rank: int = 8, target: str = "all-linear") -> MemoryCheck:
    """Predicted memory of ``purpose`` (infer | full | lora | qlora) against what is available on ``device``."""
    spec = import_spec(folder)
    avail = available_bytes(device)
    if purpose == "infer":
        from engine.estimate.memory import MemoryInput, estimate_memory

        est = estimate_memory(MemoryInput(model=spec, mode="infer", batch=batch, seq_len=seq_len, dtype=dtype))
        parts = {"weights": est.weights_bytes, "kv_cache": est.kv_cache_bytes, "activations": est.activations_bytes}
    else:  # the GPU named only prices the run; the memory parts do not depend on it
        from engine.estimate.finetune import FinetuneInput, estimate_finetune

        est = estimate_finetune(FinetuneInput(model=spec, tokens=1.0, gpu="h100-sxm", method=purpose, rank=rank,
                                              target=target if purpose != "full" else "all-linear", seq_len=seq_len,
                                              batch=batch, dtype="bf16" if purpose == "qlora" else dtype))
        parts = {"weights": est.weights_bytes, "adapters": est.adapter_bytes, "gradients": est.gradients_bytes,
                 "optimizer": est.optimizer_bytes, "activations": est.activations_bytes}
    return MemoryCheck(purpose, float(sum(parts.values())), avail, device,
                       f"estimate {'memory' if purpose == 'infer' else 'finetune'} for the architecture of config.json "
                       f"(engine/estimate/hf_config.py)", parts)


def require_fits(check: MemoryCheck) -> None:
    """The one-line refusal of a model that will not fit, with both figures."""
    if not check.fits:
        gib = 2**30
        raise ValidationError(
            f"the model will not fit: {check.purpose} needs about {check.predicted_bytes / gib:.2f} GiB predicted "
            f"({check.basis}), and {check.available_bytes / gib:.2f} GiB is available on {check.device}")


# ---- loading ------------------------------------------------------------------------------------
def load_tokenizer(folder: HFFolder):
    """The folder's fast tokenizer, checked against the config's vocabulary."""
    offline()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder.path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"the tokenizer of {folder.path.name} cannot be loaded "
                              f"({str(exc).splitlines()[0][:200]})") from None
    if len(tok) > folder.vocab_size:
        raise ValidationError(f"the tokenizer of {folder.path.name} has {len(tok)} tokens but config.json's "
                              f"vocab_size is {folder.vocab_size}: they do not belong to the same model")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if dtype not in DTYPE_BYTES:
        raise ValidationError(f"dtype {dtype!r}: choose fp32, bf16, fp16 or auto")
    return dtype


def load_hf(path: str | Path, *, dtype: str = "auto", device: str = "cpu", purpose: str = "infer",
            check_memory: bool = True, seq_len: int = 512, batch: int = 1, rank: int = 8,
            target: str = "all-linear", quantization=None) -> HFLoaded:
    """THE loader of a model folder (the lab's run loader dispatches here for HF runs): inspect, predict
    memory and refuse what will not fit, then load the tokenizer and the model offline, in eval mode
    (``quantization``: a transformers BitsAndBytesConfig, for QLoRA on CUDA)."""
    folder = inspect_folder(path)
    dtype = resolve_dtype(dtype, device)
    check = None
    if check_memory:
        check = predict_memory(folder, purpose, dtype=dtype, device=device, seq_len=seq_len, batch=batch,
                               rank=rank, target=target)
        require_fits(check)
    tok = load_tokenizer(folder)
    offline()
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    try:
        extra = {"quantization_config": quantization, "device_map": {"": device}} if quantization is not None else {}
        model = AutoModelForCausalLM.from_pretrained(str(folder.path), local_files_only=True, use_safetensors=True,
                                                     dtype=torch_dtype, **extra)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidationError(f"the weights of {folder.path.name} cannot be loaded "
                              f"({str(exc).splitlines()[0][:200]})") from None
    if quantization is None:
        model.to(device)
    model.eval()
    return HFLoaded(model=model, tokenizer=tok, folder=folder, memory=check, spec=import_spec(folder))


def lora_modules(model_type: str, target: str) -> list[str]:
    """PEFT target module names of ``target`` for this architecture; one line where it has no such layers."""
    table = LORA_MODULES.get(model_type, LORA_MODULES["default"])
    if target not in table:
        raise ValidationError(f"target {target!r} names no layer of {model_type} (its q, k and v are fused "
                              f"into one projection); use {' or '.join(table)}")
    return list(table[target])


def models_under(root: str | Path) -> list[Path]:
    """Model folders (a config.json beside it) directly under ``root`` (the workspace's models/), sorted."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / "config.json").is_file())
