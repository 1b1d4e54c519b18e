"""Inference of a Hugging Face model folder (or a lab run that fine-tuned one): ONNX export with a KV cache,
runners behind the backends' :class:`~engine.infer.backends.Runner` interface, streamed generation and
evaluation (perplexity, bits per byte).

**Export** goes through onnxruntime-genai's model builder (``onnxruntime_genai.models.builder``,
https://github.com/microsoft/onnxruntime-genai/tree/main/src/python/py/models), Microsoft's maintained
exporter for these decoders: one graph with ``com.microsoft.GroupQueryAttention`` (rotary fused, KV cache
in and out as ``past_key_values.N.key/value`` -> ``present.N.key/value``), fp32/fp16/bf16 or weight-only
int8/int4 (``MatMulNBits``) for CPU and CUDA. It reads the folder with transformers offline. optimum-onnx
was the other candidate: its latest release (0.1.0) requires transformers < 4.58, so installing it would
downgrade transformers 5.25 (``pip install --dry-run optimum-onnx``: "Would install ... transformers-4.57.6"). Every export is checked once against transformers: greedy
tokens equal and the largest logit difference (``parity.json`` beside the graph).

A LoRA run is served merged (``merge_and_unload``: W + (alpha/r)·B·A, Hu et al. 2021 Sec. 4.1), which is
what its ``merged/`` folder holds; so are the torch and the onnxruntime backends.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import ValidationError, require_number
from engine.infer.backends import Runner

HF_BACKENDS = ("torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt")
PRECISIONS = ("fp32", "int8", "int4", "fp16", "bf16")
PARITY_PROMPT_TOKENS = 8
PARITY_NEW_TOKENS = 12


def model_folder(hf_model: str | None = None, run: str | None = None) -> Path:
    """The model folder to serve: ``hf_model``, or a fine-tuning run's merged folder (made from its latest
    checkpoint when the run has none yet, e.g. a stopped run)."""
    if bool(hf_model) == bool(run):
        raise ValidationError("give exactly one of --hf-model DIR or --run DIR")
    if hf_model:
        from engine.lab.hf_model import inspect_folder

        return inspect_folder(hf_model).path
    from engine.lab.hf_train import merged_folder

    return merged_folder(run)


def _folder_key(folder: Path) -> str:
    h = hashlib.sha256(str(folder.resolve()).encode())
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class HFExport:
    path: str                 # the ONNX graph (model.onnx; weights in model.onnx.data)
    folder: str               # the model folder it came from
    precision: str
    provider: str
    exporter: str
    seconds: float
    cached: bool
    parity: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def export_dir(folder: str | Path, precision: str = "fp32", provider: str = "cpu") -> Path:
    """Where the export of ``folder`` at ``precision`` for ``provider`` lives (in the workspace)."""
    from engine.workspace import home

    root = Path(folder).resolve()
    return home() / "exports" / f"{root.name}-{_folder_key(root)}" / f"{precision}-{provider}"


def is_exported(folder: str | Path, precision: str = "fp32", provider: str = "cpu") -> bool:
    out = export_dir(folder, precision, provider)
    return (out / "model.onnx").is_file() and (out / "parity.json").is_file()


def export_onnx(folder: str | Path, precision: str = "fp32", provider: str = "cpu") -> HFExport:
    """The folder exported to ONNX (cached in the workspace by the folder's files, precision and provider)."""
    import onnxruntime_genai as og
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    from engine.lab.hf_model import inspect_folder, offline
    from engine.workspace import home

    if precision not in PRECISIONS:
        raise ValidationError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if provider not in ("cpu", "cuda"):
        raise ValidationError(f"provider {provider!r}: choose cpu or cuda")
    info = inspect_folder(folder)
    out = export_dir(info.path, precision, provider)
    graph = out / "model.onnx"
    exporter = f"onnxruntime-genai {og.__version__} model builder"
    if graph.is_file() and (out / "parity.json").is_file():
        doc = json.loads((out / "parity.json").read_text(encoding="utf-8"))
        return HFExport(str(graph), str(info.path), precision, provider, exporter, 0.0, True, doc)
    offline()
    t0 = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    cache = home() / "exports" / ".builder-cache"
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the builder prints its progress (stdout is the CLI's JSON)
            extra = parse_extra_options(None, str(info.path), str(tmp), precision, provider, str(cache), None)
            create_model(None, str(info.path), str(tmp), precision, provider, str(cache), **extra)
        seconds = time.perf_counter() - t0
        parity = check_parity(info.path, tmp / "model.onnx", precision)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - the builder's and onnxruntime's errors, in one line
        shutil.rmtree(tmp, ignore_errors=True)
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ValidationError(f"{exporter} cannot export {info.path.name} at {precision} for {provider}: {first}") from None
    (tmp / "parity.json").write_text(json.dumps(parity), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return HFExport(str(graph), str(info.path), precision, provider, exporter, seconds, False, parity)


def check_parity(folder: Path, graph: Path, precision: str) -> dict:
    """Greedy tokens of the graph vs transformers' ``generate`` and the largest logit difference."""
    import numpy as np
    import torch

    from engine.lab.hf_model import load_hf

    loaded = load_hf(folder, check_memory=False)
    vocab = loaded.folder.vocab_size
    prompt = np.random.default_rng(0).integers(3, min(vocab, len(loaded.tokenizer)), size=(1, PARITY_PROMPT_TOKENS))
    with torch.no_grad():
        ref = loaded.model.generate(torch.from_numpy(prompt), max_new_tokens=PARITY_NEW_TOKENS, do_sample=False,
                                    min_new_tokens=PARITY_NEW_TOKENS, pad_token_id=loaded.tokenizer.pad_token_id)
        ref_logits = loaded.model(input_ids=torch.from_numpy(prompt)).logits[:, -1].numpy()
    runner = HFOrtRunner(str(graph), loaded.model.config, "onnxruntime")
    got = greedy(runner, prompt, PARITY_NEW_TOKENS)
    logits, _ = runner.prefill(prompt)
    diff = float(np.abs(logits - ref_logits).max())
    return {"tokens_equal": got == ref[0, PARITY_PROMPT_TOKENS:].tolist(), "max_abs_logit_diff": diff,
            "precision": precision, "new_tokens": PARITY_NEW_TOKENS}


# ---- runners ------------------------------------------------------------------------------------------
class HFTorchRunner(Runner):
    """transformers' model with its DynamicCache."""

    def __init__(self, model, device: str = "cpu"):
        super().__init__()
        self.model, self.backend, self.dtype, self.device = model.eval(), "torch", "fp32", device

    def forward(self, ids):
        import torch

        with self.lock, torch.inference_mode():
            return self.model(input_ids=torch.as_tensor(ids, device=self.device)).logits.float().cpu().numpy()

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def prefill(self, ids):
        return self.step(ids, None, 0)

    def step(self, ids, cache, start: int):
        import torch

        with self.lock, torch.inference_mode():
            # transformers 5.25 names the KV cache ``cache`` (``past_key_values`` is deprecated)
            out = self.model(input_ids=torch.as_tensor(ids, device=self.device), cache=cache, use_cache=True)
            return out.logits[:, -1].float().cpu().numpy(), out.cache


class HFOrtRunner(Runner):
    """onnxruntime on the builder's graph: the KV cache as numpy arrays (past_key_values.N -> present.N)."""

    def __init__(self, graph: str, config, backend: str = "onnxruntime", threads: int | None = None):
        super().__init__()
        import numpy as np

        from engine.infer.capabilities import ort_session

        self.backend, self.dtype, self.path = backend, "fp32", graph
        self.device = "cpu" if backend == "onnxruntime" else "cuda"
        self.sess = ort_session(graph, backend, "fp32", threads)
        self.layers = int(config.num_hidden_layers)
        shape = self.sess.get_inputs()[2].shape
        self.kv_heads, self.head = int(shape[1]), None
        self.names = [f"past_key_values.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        # outputs by name, in the order of self.names (the builder lists all keys, then all values)
        self.outputs = ["logits"] + [n.replace("past_key_values.", "present.") for n in self.names]
        self.np = np
        kv_in = next(i for i in self.sess.get_inputs() if i.name == "past_key_values.0.key")
        self.kv_dtype = np.float16 if "float16" in kv_in.type else np.float32
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.head = int(head_dim)

    def _run(self, ids, cache):
        np = self.np
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        b = ids.shape[0]
        if cache is None:
            cache = [np.zeros((b, self.kv_heads, 0, self.head), dtype=self.kv_dtype) for _ in self.names]
        total = cache[0].shape[2] + ids.shape[1]
        feed = {"input_ids": ids, "attention_mask": np.ones((b, total), dtype=np.int64),
                **dict(zip(self.names, cache, strict=True))}
        with self.lock:
            outs = self.sess.run(self.outputs, feed)
        return outs[0].astype(np.float32), outs[1:]

    def forward(self, ids):
        return self._run(ids, None)[0]

    def prefill(self, ids):
        return self.step(ids, None, 0)

    def step(self, ids, cache, start: int):
        logits, present = self._run(ids, cache)
        return logits[:, -1], present


def greedy(runner: Runner, prompt, n: int) -> list[int]:
    """Greedy decoding with the runner's KV cache (batch 1): the new token ids."""
    import numpy as np

    logits, cache = runner.prefill(prompt)
    out, pos = [], prompt.shape[1]
    for _ in range(n):
        nxt = int(np.argmax(logits[0]))
        out.append(nxt)
        logits, cache = runner.step(np.array([[nxt]], dtype=np.int64), cache, pos)
        pos += 1
    return out


def make_hf_runner(folder: Path, backend: str = "torch", precision: str = "fp32", threads: int | None = None):
    """(runner, HFLoaded) for the folder on ``backend`` (torch, onnxruntime, onnxruntime-cuda, onnxruntime-trt)."""
    from engine.lab.hf_model import load_hf

    if backend not in HF_BACKENDS:
        raise ValidationError(f"backend {backend!r} for a model folder: choose one of {', '.join(HF_BACKENDS)}")
    loaded = load_hf(folder)
    item = HFServable(Path(folder), loaded, HFServeConfig(loaded.spec, SERVE_CONTEXT, loaded.folder.vocab_size),
                      str(folder))
    return runner_for(item, backend, precision, threads), loaded


# ---- generation and evaluation ------------------------------------------------------------------------
def prompt_ids(tok, prompt: str, chat: bool) -> list[int]:
    """The prompt's tokens: the chat template with a generation prompt for a chat model, else the text."""
    if chat:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return list(tok(prompt, add_special_tokens=False)["input_ids"]) or [int(tok.eos_token_id)]


def stream(runner: Runner, tok, prompt: str, *, chat: bool, max_new_tokens: int = 64, temperature: float = 0.0,
           top_k: int | None = 40, seed: int = 0, stats: dict | None = None):
    """Text pieces as they are generated (for ``st.write_stream``); ``stats`` receives tokens, TTFT, tokens/s.
    The timings are the model's: the time the consumer spends between pieces (a page drawing them) is left out."""
    import numpy as np
    import torch

    n = int(require_number("max-new-tokens", max_new_tokens, low=1, high=100_000, integer=True))
    ids = prompt_ids(tok, prompt, chat)
    gen = torch.Generator().manual_seed(int(seed))
    t0 = time.perf_counter()
    logits, cache = runner.prefill(np.array([ids], dtype=np.int64))
    new: list[int] = []
    text_so_far, first, away = "", None, 0.0
    stop = {int(tok.eos_token_id)} | ({int(tok.convert_tokens_to_ids("<|im_end|>"))} if chat and "<|im_end|>" in
                                        tok.get_vocab() else set())
    for _ in range(n):
        row = torch.from_numpy(np.asarray(logits[0], dtype=np.float32))
        if temperature <= 0:
            nxt = int(row.argmax())
        else:
            row = row / temperature
            if top_k:
                kth = torch.topk(row, min(top_k, row.numel())).values[-1]
                row = row.masked_fill(row < kth, -math.inf)
            nxt = int(torch.multinomial(torch.softmax(row, -1), 1, generator=gen))
        if first is None:
            first = time.perf_counter() - t0
        if nxt in stop:
            break
        new.append(nxt)
        text = tok.decode(new, skip_special_tokens=True)
        if text[len(text_so_far):]:
            left = time.perf_counter()
            yield text[len(text_so_far):]
            away += time.perf_counter() - left
            text_so_far = text
        logits, cache = runner.step(np.array([[nxt]], dtype=np.int64), cache, len(ids) + len(new) - 1)
    total = time.perf_counter() - t0 - away
    if stats is not None:
        stats.update(tokens=new, new_tokens=len(new), prompt_tokens=len(ids), time_to_first_token_s=first or total,
                     tokens_per_s=(len(new) - 1) / (total - first) if len(new) > 1 and first and total > first else None,
                     total_s=total, text=text_so_far)


def generate_hf(*, hf_model: str | None = None, run: str | None = None, prompt: str = "", backend: str = "torch",
                precision: str = "fp32", max_new_tokens: int = 64, temperature: float = 0.0, top_k: int | None = 40,
                seed: int = 0) -> dict:
    """The CLI's generate for a model folder or an HF run: the completion and its timings."""
    folder = model_folder(hf_model, run)
    runner, loaded = make_hf_runner(folder, backend, precision)
    stats: dict = {}
    completion = "".join(stream(runner, loaded.tokenizer, prompt, chat=loaded.chat, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_k=top_k, seed=seed, stats=stats))
    return {"folder": str(folder), "backend": runner.backend, "precision": precision, "chat_template": loaded.chat,
            "prompt": prompt, "completion": completion, "text": prompt + completion,
            **{k: v for k, v in stats.items() if k != "text"}}


@dataclass
class HFServeConfig:
    """The fields of a lab ModelConfig that serving reads, for a model folder (the importer's ModelSpec)."""

    spec: object
    context: int
    vocab_size: int
    n_classes: int = 0

    def model_spec(self):
        return self.spec


@dataclass
class HFServable:
    """A model folder where the inference room expects a loaded lab model (``make_runner`` dispatches on kind)."""

    folder: Path
    hf: object
    config: HFServeConfig
    source: str
    kind: str = "hf"

    def runner(self, backend: str, dtype: str = "fp32", threads: int | None = None) -> Runner:
        return runner_for(self, backend, dtype, threads)


SERVE_CONTEXT = 1024  # the window calibrations and benchmarks use (a model's full context is far longer)


def servable(hf_model: str | None = None, run: str | None = None, device: str = "auto") -> HFServable:
    """The folder loaded for serving: on the GPU when there is one (``auto``), so torch runs there too."""
    import torch

    from engine.lab.hf_model import load_hf

    folder = model_folder(hf_model, run)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_hf(folder, device=device, dtype="fp32")
    ctx = min(int(loaded.spec.context), SERVE_CONTEXT)
    return HFServable(folder, loaded, HFServeConfig(loaded.spec, ctx, loaded.folder.vocab_size), str(folder))


def runner_for(servable_: HFServable, backend: str, dtype: str = "fp32", threads: int | None = None) -> Runner:
    """The Runner of a servable folder on ``backend`` (``dtype`` fp32, or int8/int4 on onnxruntime)."""
    from engine.infer.capabilities import resolve_backend

    name, _ = resolve_backend(backend)
    if name not in HF_BACKENDS:
        raise ValidationError(f"backend {name!r} for a model folder: choose one of {', '.join(HF_BACKENDS)}")
    if name == "torch":
        if dtype != "fp32":
            raise ValidationError("the torch backend serves a model folder in fp32 here; int8/int4 run on onnxruntime")
        return HFTorchRunner(servable_.hf.model, str(next(servable_.hf.model.parameters()).device.type))
    exp = export_onnx(servable_.folder, dtype, "cpu" if name == "onnxruntime" else "cuda")
    return HFOrtRunner(exp.path, servable_.hf.model.config, name, threads)
