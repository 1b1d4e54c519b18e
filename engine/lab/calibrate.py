"""Calibration: a few real training steps of a preset on this machine, measured.

Random tokens (the data does not change the cost of a step), the trainer's model, optimizer and
precision (AdamW, fused on CUDA; bf16 autocast on CUDA, fp32 on the CPU). One first step is counted
part by part (below); the next ``warmup`` steps (allocator warmup, cuDNN/cuBLAS heuristics,
``torch.compile``) are timed apart; the next ``steps`` give tokens/s, achieved model FLOP/s (PaLM's
6N + 12·L·H·Q·T per token, Chowdhery et al. 2022, App. B) and MFU against the GPU's datasheet peak
(engine/catalog/gpus.toml), or on a CPU against the measured fp32 matmul peak (CPUs publish no
dense-matmul peak to look up).

Memory, measured as the estimator predicts it, part by part (``measured_parts`` beside
``predicted_parts``): weights, gradients and optimizer states are the bytes of those tensors
themselves (distinct storages, so the tied LM head counts once); activations are the distinct
storages autograd saves for backward during the first step's forward pass
(``torch.autograd.graph.saved_tensors_hooks``), parameters and buffers excluded. ``peak_memory_bytes``
is the figure to hold against the prediction: ``torch.cuda.max_memory_allocated`` on CUDA, the sum
of the counted parts on a CPU. The process's RSS is reported apart and labelled as such
(``rss_rise_bytes``: how far peak RSS rose above its size before the model was built;
``process_peak_rss_bytes``: the absolute peak), because it also holds allocator slack, thread pools,
the matmul-peak probe and PyTorch's own buffers, which no estimator of a model's memory models.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from engine.errors import RunError, ValidationError, require_number

# Vocabulary used for each preset's synthetic tokens: the byte tokenizer's 258, except GPT-2 small's
# 50304 (GPT-2's 50257 padded to a multiple of 64, as nanoGPT does) so the shapes match nanoGPT.
CALIBRATION_VOCAB = {"gpt2-small": 50304}
BYTE_VOCAB = 258
CPU_TOKENS_PER_STEP = 2048  # default CPU batch: about this many tokens per step, so a step takes seconds, not minutes


@dataclass(frozen=True)
class CalibrateInput:
    preset: str
    device: str = "auto"
    batch_size: int | None = None
    steps: int = 10
    warmup: int = 3
    dtype: str = "auto"
    compile: bool = False
    context: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class CalibrateResult:
    preset: str
    device: str
    device_name: str
    dtype: str
    batch_size: int
    context: int
    vocab_size: int
    params: int
    steps: int
    tokens_per_s: float
    step_s: float
    warmup_s: float
    achieved_tflops: float
    flops_per_token: float
    peak_tflops_used: float | None
    mfu: float | None
    mfu_basis: str
    peak_memory_bytes: int | None
    process_peak_rss_bytes: int | None
    predicted_memory_bytes: float | None
    memory_basis: str
    compiled: bool
    measured_parts: dict | None = None   # weights/gradients/optimizer/activations bytes, counted from tensors
    predicted_parts: dict | None = None  # the estimator's same four parts
    rss_rise_bytes: int | None = None    # CPU: rise of the process's peak RSS (not comparable to the estimate)
    measured_basis: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Plan:
    """The validated numbers of one calibration."""

    preset: object  # engine.lab.presets.LabPreset
    device: str
    dtype: str
    steps: int
    warmup: int
    context: int
    vocab: int
    batch: int
    model_config: object  # engine.lab.model.ModelConfig


def calibrate(inp: CalibrateInput, registry=None) -> CalibrateResult:
    """Run and time ``inp.warmup + inp.steps`` training steps; optionally record a 'calibrate' run."""
    from engine.lab.device import is_oom, oom_message

    plan = _plan(inp)
    name = _register(registry, inp, plan) if registry is not None else None
    rss_before = _rss()
    try:
        params, counter, warmup_s, elapsed = _measure(plan, inp)
    except Exception as exc:  # noqa: BLE001
        if is_oom(exc):
            msg = oom_message(plan.batch, 1, plan.context, plan.device, 1)
        elif isinstance(exc, (ValidationError, RunError)):
            raise
        else:
            msg = f"calibration crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if registry is not None and name:
            registry.set_status(name, "failed", error=msg)
        raise RunError(msg) from None
    result = _result(plan, inp, params, counter, warmup_s, elapsed, rss_before)
    if registry is not None and name:
        registry.set_status(name, "finished", summary=result.to_dict())
    return result


def _plan(inp: CalibrateInput) -> _Plan:
    """Validate the input and fill in the preset's numbers (on a CPU a batch of about
    ``CPU_TOKENS_PER_STEP`` tokens unless one is given)."""
    from engine.lab.device import resolve_device, resolve_dtype
    from engine.lab.presets import get_preset

    preset = get_preset(inp.preset)
    device = resolve_device(inp.device)
    steps = int(require_number("steps", inp.steps, low=1, high=10_000, integer=True))
    warmup = int(require_number("warmup", inp.warmup, low=1, high=10_000, integer=True))
    context = int(require_number("context", inp.context if inp.context is not None else preset.context,
                                 low=1, high=1e6, integer=True))
    vocab = CALIBRATION_VOCAB.get(preset.id, BYTE_VOCAB)
    if inp.batch_size is not None:
        batch = int(require_number("batch_size", inp.batch_size, low=1, high=1e6, integer=True))
    elif device == "cuda":
        batch = preset.batch_size
    else:
        batch = max(1, min(preset.batch_size, CPU_TOKENS_PER_STEP // context))
    return _Plan(preset=preset, device="cuda" if device == "cuda" else "cpu", dtype=resolve_dtype(inp.dtype, device),
                 steps=steps, warmup=warmup, context=context, vocab=vocab, batch=batch,
                 model_config=preset.config(vocab, context=context))


def _register(registry, inp: CalibrateInput, plan: _Plan) -> str:
    """A running 'calibrate' row with this process's pid (a killed calibration is marked failed like a
    killed run)."""
    import os

    from engine.workspace import runs_dir

    label = f"calibrate-{plan.preset.id}-{plan.device}"
    name = registry.create_run(label, asdict(inp), runs_dir() / label, kind="calibrate", status="running")
    registry.set_pid(name, os.getpid())
    return name


def _measure(plan: _Plan, inp: CalibrateInput):
    """Build the model and optimizer, count the first step part by part, time ``warmup`` steps and then
    ``steps`` steps on two fixed batches of random tokens: ``(params, counter, warmup_s, elapsed_s)``."""
    import torch

    from engine.lab.model import Transformer, configure_optimizer, lm_loss
    from engine.lab.train_model import precision

    dev = plan.device
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(inp.seed)
    scaler, autocast = precision(plan.dtype, dev)
    model = Transformer(plan.model_config).to(dev)
    params = model.num_params()
    opt = configure_optimizer(model, plan.preset.lr, 0.1, (0.9, 0.95), dev)
    run_model = torch.compile(model) if inp.compile else model
    gen = torch.Generator().manual_seed(inp.seed)
    batches = [torch.randint(0, plan.vocab, (plan.batch, plan.context + 1), generator=gen) for _ in range(2)]
    batches = [b.pin_memory().to(dev, non_blocking=True) if dev == "cuda" else b for b in batches]
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def one_step(i: int, counter: TensorCounter | None = None) -> None:
        b = batches[i % 2]
        if counter is not None:
            with counter.saved_for_backward(), autocast():  # eager model: hooks and compile do not mix
                loss = lm_loss(model(b[:, :-1]), b[:, 1:])
        else:
            with autocast():
                loss = lm_loss(run_model(b[:, :-1]), b[:, 1:])
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if counter is not None:
            counter.after_step(model, opt)
        opt.zero_grad(set_to_none=True)

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            one_step(i)
        if dev == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    counter = TensorCounter(model)
    one_step(1, counter)  # the other batch: warmup starts from batch 0 as before
    warmup_s = timed(plan.warmup)
    return params, counter, warmup_s, timed(plan.steps)


def _result(plan: _Plan, inp: CalibrateInput, params: int, counter: TensorCounter, warmup_s: float,
            elapsed: float, rss_before: int | None) -> CalibrateResult:
    """Throughput, MFU and memory measured against the estimator's prediction."""
    from engine.lab.device import device_name, peak_rss_bytes
    from engine.lab.throughput import memory_bytes, peak_flops

    dev, cfg, context = plan.device, plan.model_config, plan.context
    tokens_per_s = plan.batch * context * plan.steps / elapsed
    flops_per_token = cfg.model_spec().training_flops_per_token(context)
    achieved = flops_per_token * tokens_per_s
    peak, basis = peak_flops(dev, dev, plan.dtype)
    mem = memory_bytes(dev, dev) if dev == "cuda" else int(sum(counter.parts.values()))
    rss_peak = peak_rss_bytes()
    # what the model, optimizer, activations, allocator and thread pools added to the process (the
    # interpreter and PyTorch's libraries take a few hundred MB before the model exists)
    rss_rise = max(0, rss_peak - rss_before) if dev == "cpu" and rss_peak and rss_before else None
    attention = attention_kernel(cfg, dev)
    predicted, mbasis, predicted_parts = predicted_memory(cfg, plan.batch, context, plan.dtype, attention)
    return CalibrateResult(
        preset=plan.preset.id, device=dev, device_name=device_name(dev), dtype=plan.dtype, batch_size=plan.batch,
        context=context, vocab_size=plan.vocab, params=params, steps=plan.steps, tokens_per_s=tokens_per_s,
        step_s=elapsed / plan.steps, warmup_s=warmup_s, achieved_tflops=achieved / 1e12,
        flops_per_token=flops_per_token, peak_tflops_used=peak / 1e12 if peak else None,
        mfu=achieved / peak if peak else None, mfu_basis=basis, peak_memory_bytes=mem,
        process_peak_rss_bytes=rss_peak, predicted_memory_bytes=predicted, memory_basis=mbasis,
        compiled=bool(inp.compile), measured_parts=counter.parts, predicted_parts=predicted_parts,
        rss_rise_bytes=rss_rise,
        measured_basis=("torch.cuda.max_memory_allocated (parts: counted from the tensors)" if dev == "cuda" else
                        "tensors counted part by part: weights, gradients and AdamW states themselves, activations "
                        "as the storages autograd saved for backward (parameters excluded)"),
    )


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - psutil missing
        return None


PARTS = ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes")


class TensorCounter:
    """Counts one training step's memory the way the estimator splits it: weights, gradients and
    optimizer states from the tensors themselves, and activations as the distinct storages autograd
    saves for backward (``torch.autograd.graph.saved_tensors_hooks``), parameters and buffers excluded.
    Storages are de-duplicated by address: views of one tensor, and the tied embedding and LM head,
    count once. Saved tensors stay alive until backward, so an address is never reused meanwhile.
    Under CUDA autocast the 16-bit copies of the weights that the matmuls keep for backward are saved
    storages too, so they land in "activations" (ZeRO's convention, which the estimator follows, counts
    them as the 16-bit weights); compare the totals there. Not run on a GPU while this was written."""

    def __init__(self, model) -> None:
        self._exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        self._saved: dict[int, int] = {}
        self.parts: dict[str, int] = {}

    def _pack(self, t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr and ptr not in self._exclude:
            self._saved.setdefault(ptr, storage.nbytes())
        return t

    def saved_for_backward(self):
        import torch

        self._saved.clear()
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def after_step(self, model, optimizer) -> None:
        """Record the parts once the optimizer has stepped (its states exist) and before zero_grad."""
        import torch

        params = list(model.parameters())
        states = [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
        self.parts = {
            "weights_bytes": _distinct_bytes(params),
            "gradients_bytes": _distinct_bytes(p.grad for p in params if p.grad is not None),
            "optimizer_bytes": _distinct_bytes(states),
            "activations_bytes": int(sum(self._saved.values())),
        }


def _distinct_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen.setdefault(storage.data_ptr(), storage.nbytes())
    return int(sum(seen.values()))


def attention_kernel(cfg, device: str) -> str:
    """The estimator's attention setting for the kernel PyTorch's SDPA takes for this model in training:
    FlashAttention-style kernels (nothing a·s² kept) on CUDA and on the CPU without dropout; with
    attention dropout on the CPU, SDPA falls back to its math path, which keeps the softmax output, the
    dropout mask and the dropped scores for backward, like eager attention (Korthikanti et al. 2022's
    5·a·s²·b term)."""
    return "eager" if device == "cpu" and cfg.dropout > 0 else "flash"


def predicted_memory(cfg, batch: int, context: int, dtype: str,
                      attention: str = "flash") -> tuple[float | None, str, dict | None]:
    """The memory estimator's training total and parts for this model and batch (no fixed overhead:
    PyTorch's allocator counter does not see the CUDA context). Mixed precision there is 2+2+12 bytes
    per parameter, which equals autocast's fp32 weights, gradients and two Adam moments (16 B) in total
    though it splits them differently (ZeRO puts the fp32 master copy in the optimizer part)."""
    from engine.estimate.memory import MemoryInput, estimate_memory

    try:
        est = estimate_memory(MemoryInput(model=cfg.model_spec(), mode="train", batch=batch, seq_len=context,
                                          dtype="fp32" if dtype == "fp32" else "bf16", attention=attention,
                                          overhead_gib=0))
    except ValidationError as exc:
        return None, f"estimator refused: {exc}", None
    parts = {"weights_bytes": est.weights_bytes, "gradients_bytes": est.gradients_bytes,
             "optimizer_bytes": est.optimizer_bytes, "activations_bytes": est.activations_bytes}
    return (est.total_bytes_per_gpu, "engine.estimate.memory (weights + gradients + AdamW + activations, "
            f"{attention} attention)", parts)
