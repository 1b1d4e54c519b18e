"""Generation (streamed, with a KV cache, on any backend) and classification.

:class:`Stream` is an iterator of text pieces (what ``st.write_stream`` takes) that records, as it goes,
the tokens, the time to the first token and the decode rate. Sampling is the lab's (``Transformer.generate``:
temperature, top-k, ``torch.multinomial`` with a seeded generator; temperature 0 is greedy), done in
PyTorch on the backend's logits, so the ``torch`` backend produces exactly the tokens the lab's
``generate`` always produced, and every backend draws the same tokens from the same logits.

KV cache: the prompt is prefilled once, then each step feeds one token and the backend's cache. When
the sequence reaches the context, the cache is rebuilt from the last ``context - 1`` tokens (as the lab
model does). ``use_cache=False`` recomputes the whole window every step (the reference the cache must
match token for token, and the baseline of the KV-cache benchmark).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from engine.errors import ValidationError, require_number

MAX_NEW_TOKENS = 100_000
MAX_TEMPERATURE = 100.0
MAX_PROMPT_CHARS = 1_000_000


@dataclass(frozen=True)
class GenerateResult:
    text: str              # prompt + continuation (the lab's generate returned the same)
    completion: str
    tokens: list[int]      # the new token ids
    new_tokens: int
    prompt_tokens: int
    backend: str
    backend_choice: str
    dtype: str
    time_to_first_token_s: float
    tokens_per_s: float    # decode rate after the first token (all new tokens / total time if only one)
    total_s: float
    use_cache: bool
    notes: list[str] = field(default_factory=list)
    run_dir: str | None = None
    checkpoint: str | None = None
    step: int | None = None
    prompt: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def check_sampling(max_new_tokens, temperature, top_k) -> tuple[int, float, int | None]:
    n = int(require_number("max-new-tokens", max_new_tokens, low=1, high=MAX_NEW_TOKENS, integer=True))
    t = float(require_number("temperature", temperature, low=0, high=MAX_TEMPERATURE))
    k = None if top_k in (None, 0) else int(require_number("top-k", top_k, low=1, high=10_000_000, integer=True))
    return n, t, k


def encode_prompt(loaded, prompt: str, *, reserve: int = 1) -> tuple[list[int], list[str]]:
    """Token ids for a prompt (``<eos>`` first, as the lab samples), and notes. Refuses an empty prompt
    and, for a char tokenizer, characters it never saw; a prompt longer than the context keeps its last
    tokens and says so."""
    if not isinstance(prompt, str) or not prompt:
        raise ValidationError("the prompt is empty; type some text to continue")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"the prompt has {len(prompt):,} characters; at most {MAX_PROMPT_CHARS:,}")
    tok = loaded.tokenizer
    if tok is None:
        raise ValidationError(f"{loaded.source} has no tokenizer (a preset with random weights cannot take text)")
    if tok.kind == "char":
        unknown = sorted({c for c in prompt if c not in tok._index})  # the tokenizer's own vocabulary
        if unknown:
            shown = "".join(unknown[:20])
            raise ValidationError(f"the prompt has {len(unknown)} character(s) this model's character vocabulary "
                                  f"never saw: {shown!r}; use only characters from its training text")
    ids = [tok.eos_id, *tok.encode(prompt)]
    notes = []
    limit = loaded.config.context - reserve
    if len(ids) > limit:
        notes.append(f"the prompt is {len(ids):,} tokens but the context is {loaded.config.context:,}: kept the "
                     f"last {limit:,} tokens")
        ids = ids[-limit:]
    return ids, notes


class Stream:
    """Iterate to get text pieces as tokens are made; ``result()`` afterwards gives the figures."""

    def __init__(self, loaded, runner, prompt: str, *, max_new_tokens: int = 200, temperature: float = 0.8,
                 top_k: int | None = 40, seed: int = 0, use_cache: bool = True, backend_choice: str = ""):
        if loaded.config.n_classes:
            raise ValidationError("this run trained a classifier; generation needs a language model (use classify)")
        self.n, self.temperature, self.top_k = check_sampling(max_new_tokens, temperature, top_k)
        self.loaded, self.runner, self.prompt = loaded, runner, prompt
        self.ids, self.notes = encode_prompt(loaded, prompt)
        self.seed, self.use_cache, self.backend_choice = int(seed), bool(use_cache), backend_choice
        self.new: list[int] = []
        self.ttft = self.total = None
        self._first_at = self._last_at = None

    def _sample(self, logits, gen):
        import torch

        logits = torch.as_tensor(logits)
        if self.temperature <= 0:
            return int(logits.argmax(dim=-1)[0])
        logits = logits.float() / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)[0, 0])

    def tokens(self) -> Iterator[int]:
        """The new token ids, one at a time (the lab model's generate loop, on this runner)."""
        import numpy as np
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        context = self.loaded.config.context
        out = list(self.ids)
        cache, length, win = None, 0, 0  # win: where the attended window starts in `out`
        start = time.perf_counter()
        for i in range(self.n):
            if i == 0 or length >= context:  # (re)start: the last context - 1 tokens
                win = max(0, len(out) - (context - 1)) if len(out) >= context else 0
                length = len(out) - win
                fresh = True
            else:
                length += 1
                fresh = False
            if not self.use_cache:  # recompute the same window from scratch
                logits = self.runner.forward(np.asarray([out[win:]], dtype=np.int64))[:, -1]
            elif fresh:
                logits, cache = self.runner.prefill(np.asarray([out[win:]], dtype=np.int64))
            else:
                logits, cache = self.runner.step(np.asarray([out[-1:]], dtype=np.int64), cache, length - 1)
            nxt = self._sample(logits, gen)
            now = time.perf_counter()
            if self._first_at is None:
                self._first_at = now
                self.ttft = now - start
            self._last_at = now
            out.append(nxt)
            self.new.append(nxt)
            yield nxt
        self.total = time.perf_counter() - start

    def __iter__(self) -> Iterator[str]:
        tok = self.loaded.tokenizer
        shown = ""
        for _ in self.tokens():
            text = tok.decode([i for i in self.new if i != tok.pad_id])
            if text.endswith("\ufffd") and tok.kind == "byte":
                continue  # half of a multi-byte character: wait for the rest
            if len(text) > len(shown) and text.startswith(shown):
                piece, shown = text[len(shown):], text
                yield piece
            elif text != shown:
                shown = text
        tail = tok.decode([i for i in self.new if i != tok.pad_id])
        if tail != shown and tail.startswith(shown):
            yield tail[len(shown):]

    def result(self) -> GenerateResult:
        if self.total is None:
            for _ in self:
                pass
        tok = self.loaded.tokenizer
        completion = tok.decode([i for i in self.new if i != tok.pad_id])
        n = len(self.new)
        if n > 1 and self._last_at > self._first_at:
            rate = (n - 1) / (self._last_at - self._first_at)
        else:
            rate = n / self.total if self.total else 0.0
        return GenerateResult(
            text=self.prompt + completion, completion=completion, tokens=list(self.new), new_tokens=n,
            prompt_tokens=len(self.ids), backend=self.runner.backend, backend_choice=self.backend_choice,
            dtype=self.runner.dtype, time_to_first_token_s=float(self.ttft or 0.0), tokens_per_s=float(rate),
            total_s=float(self.total), use_cache=self.use_cache, notes=list(self.notes),
            run_dir=self.loaded.source, checkpoint=self.loaded.checkpoint, step=self.loaded.step, prompt=self.prompt,
        )


@dataclass(frozen=True)
class ClassifyResult:
    label: str
    probabilities: dict[str, float]
    backend: str
    backend_choice: str
    tokens: int
    latency_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def classify(loaded, runner, text: str, backend_choice: str = "") -> ClassifyResult:
    """Class probabilities for one text (the classifier's mean-pooled head; softmax over its logits)."""
    import numpy as np

    if not loaded.config.n_classes:
        raise ValidationError("this run trained a language model; classify needs a classifier run (use generate)")
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("the text is empty; type some text to classify")
    tok = loaded.tokenizer
    notes = []
    if tok.kind == "char":
        unknown = sorted({c for c in text if c not in tok._index})
        if unknown:
            raise ValidationError(f"the text has {len(unknown)} character(s) this model's character vocabulary "
                                  f"never saw: {''.join(unknown[:20])!r}")
    ids = list(tok.encode(text)) or [tok.eos_id]
    ctx = loaded.config.context
    if len(ids) > ctx:  # the trainer truncates rows to their first `context` tokens
        notes.append(f"the text is {len(ids):,} tokens but the context is {ctx:,}: kept the first {ctx:,}")
        ids = ids[:ctx]
    t0 = time.perf_counter()
    logits = runner.forward(np.asarray([ids], dtype=np.int64))[0].astype(np.float64)
    latency = time.perf_counter() - t0
    p = np.exp(logits - logits.max())
    p /= p.sum()
    names = loaded.labels if loaded.labels and len(loaded.labels) == len(p) else [str(i) for i in range(len(p))]
    probs = {names[i]: float(p[i]) for i in range(len(p))}
    return ClassifyResult(label=names[int(p.argmax())], probabilities=probs, backend=runner.backend,
                          backend_choice=backend_choice, tokens=len(ids), latency_s=latency, notes=notes)


# ---- one call from a run folder (CLI, page) -------------------------------------------------------------
_RUNNERS: dict = {}
_LOCK = threading.Lock()


def runner_for(loaded, backend: str = "auto", dtype: str = "fp32"):
    """A cached runner per (weights, backend, precision) in this process, and how the backend was chosen."""
    from engine.infer.backends import make_runner

    from engine.infer.capabilities import resolve_backend

    name, how = resolve_backend(backend)
    key = (loaded.key, name, dtype)
    with _LOCK:
        hit = _RUNNERS.get(key)
    if hit is None:
        hit = make_runner(loaded, name, dtype)
        with _LOCK:
            _RUNNERS.setdefault(key, hit)
    return _RUNNERS[key], how


def generate(run: str, prompt: str, *, backend: str = "auto", max_new_tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = 40, seed: int = 0, which: str = "latest", dtype: str = "fp32",
             use_cache: bool = True) -> GenerateResult:
    """Generate from a run's checkpoint on a backend (checks the sampling arguments before loading anything)."""
    from engine.lab.loader import load_run
    from engine.requires import require_torch

    require_torch("generate")
    check_sampling(max_new_tokens, temperature, top_k)
    if not isinstance(prompt, str) or not prompt:
        raise ValidationError("the prompt is empty; type some text to continue")
    loaded = load_run(run, which)
    if loaded.config.n_classes:
        raise ValidationError("this run trained a classifier; generation needs a language model (use classify)")
    runner, how = runner_for(loaded, backend, dtype)
    return Stream(loaded, runner, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                  seed=seed, use_cache=use_cache, backend_choice=how).result()


def classify_run(run: str, text: str, *, backend: str = "auto", which: str = "latest", dtype: str = "fp32") -> ClassifyResult:
    from engine.lab.loader import load_run
    from engine.requires import require_torch

    require_torch("classify")
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("the text is empty; type some text to classify")
    loaded = load_run(run, which)
    if not loaded.config.n_classes:
        raise ValidationError("this run trained a language model; classify needs a classifier run (use generate)")
    runner, how = runner_for(loaded, backend, dtype)
    return classify(loaded, runner, text, how)
