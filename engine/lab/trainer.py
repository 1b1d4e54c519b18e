"""The model-lab trainer: one plain loop, reproducible to the step.

- AdamW with decoupled weight decay on matrices only (Loshchilov & Hutter 2019), fused kernels on CUDA.
- Learning rate: linear warmup then cosine decay to ``min_lr_ratio × lr`` (Loshchilov & Hutter 2017,
  SGDR eq. 5 without restarts), a pure function of the step, so the "scheduler state" is the step.
- Global batch: ``batch_size`` sequences per optimizer step, split into ``grad_accum`` micro-batches
  and over ``world`` data-parallel processes. Every process draws its share of the step's global
  batch from :meth:`Dataset.get_batch` (a pure function of seed and step), so a resumed run and a
  2-process run see exactly the batches of an uninterrupted single process.
- Mixed precision: bf16 autocast on CUDA (fp16 with a gradient scaler where bf16 is missing), TF32
  matmuls, fp32 on the CPU. Optional ``torch.compile`` (compile time reported apart from step time).
- Evaluation every ``eval_every`` steps (loss and perplexity; accuracy and macro-F1 for classifiers),
  the best checkpoint kept, early stopping, divergence detection (a non-finite loss ends the run as
  'diverged' and its state is never checkpointed), graceful stop (registry flag, SIGTERM, SIGINT).
- Throughput excludes the first step (warmup and compilation) and time spent evaluating or writing
  checkpoints; on CUDA the clock is read after ``torch.cuda.synchronize``. MFU follows PaLM (Chowdhery
  et al. 2022, App. B): model FLOPs per token × tokens/s ÷ peak FLOP/s. On CUDA the peak is the
  catalog's datasheet figure for the GPU; a CPU has no datasheet peak, so there the denominator is
  the measured FLOP/s of a large fp32 matmul ("MFU vs measured matmul peak", ``mfu_basis``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.errors import RunError, ValidationError

from engine.lab.device import (
    cpu_matmul_peak, device_name, gpu_peak_flops, is_oom, oom_message, peak_rss_bytes,
    resolve_device, resolve_dtype,
)
from engine.lab.run_folder import attach_registry, check_resume_target, prepare_run_dir
from engine.lab.train_config import (  # noqa: F401 - TrainConfig, TrainResult and lr_at are the trainer's API too
    ARCH_OVERRIDES, TrainConfig, TrainResult, lr_at, resolve_config, validate_config,
)


# ---- distributed ---------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return _Dist()
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return _Dist(rank=rank, world=world, local_rank=local, enabled=True)


# ---- the run -------------------------------------------------------------------------------------
class _Stop:
    """Stop requests from signals (any thread sets it) and the registry flag (polled by rank 0)."""

    def __init__(self) -> None:
        self.reason = ""
        self.signal = threading.Event()

    def handler(self, signum, frame) -> None:  # noqa: ARG002
        self.reason = f"stopped by signal {signal.Signals(signum).name}"
        self.signal.set()


def train(cfg: TrainConfig, registry=None, progress: Callable[[dict], None] | None = None,
          on_eval: Callable[[int, dict], bool] | None = None) -> TrainResult:
    """Train (or resume) a run; see the module docstring. Raises ValidationError for bad input and
    RunError when the run fails (diverged, out of memory, crashed); the registry records either.
    ``on_eval(step, metrics)`` is called after each evaluation (single process only); when it returns
    True the run checkpoints and ends as 'stopped' ("pruned"): how a sweep prunes a trial."""
    cfg = resolve_config(cfg)
    validate_config(cfg)
    device = resolve_device(cfg.device)
    dist = _init_distributed(device)
    reg = None
    if dist.main:
        if registry is None:
            from engine.store import Registry

            registry = Registry(cfg.registry)
        reg = registry
    run = _Run(cfg, device, dist, reg, progress)
    run.on_eval = on_eval
    try:
        return run.execute()
    finally:
        run.cleanup()


class _Run:
    """One execution of :func:`train` (internal: holds the state the loop shares)."""

    def __init__(self, cfg: TrainConfig, device: str, dist: _Dist, reg, progress) -> None:
        self.cfg, self.dist, self.reg, self.progress = cfg, dist, reg, progress
        self.device_type = device
        self.device = f"cuda:{dist.local_rank}" if device == "cuda" else "cpu"
        self.name: str | None = None
        self.run_dir: Path | None = None
        self.stop = _Stop()
        self._old_handlers: dict = {}
        self.pending: list[dict] = []
        self.last_flush = 0.0
        self.samples: list[str] = []
        self.on_eval: Callable[[int, dict], bool] | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def cleanup(self) -> None:
        if getattr(self, "_old_threads", None):
            import torch

            torch.set_num_threads(self._old_threads)
        for sig, old in self._old_handlers.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                pass
        if self.dist.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old_handlers[sig] = signal.signal(sig, self.stop.handler)
            except (ValueError, OSError):
                pass

    def _fail(self, status: str, message: str) -> None:
        if self.reg is not None and self.name is not None:
            try:
                self.reg.set_status(self.name, status, error=message)
            except Exception:  # noqa: BLE001 - never mask the original error
                pass

    def execute(self) -> TrainResult:
        cfg = self.cfg
        try:
            self.run_dir = prepare_run_dir(cfg) if self.dist.main else Path(cfg.resume or cfg.out).expanduser().resolve()
            if cfg.resume:
                check_resume_target(cfg, self.run_dir)
        except ValidationError as exc:
            if self.reg is not None and not cfg.resume:  # a launcher's queued row learns why it never ran
                queued = self.reg.find_run_by_dir(Path(cfg.out).expanduser())
                if queued is not None and queued["status"] == "queued":
                    self.reg.set_status(queued["name"], "failed", error=str(exc))
            raise
        if self.dist.enabled:
            self._barrier()
        config_doc = {"train": cfg.to_dict()}
        prev_status = None
        if self.reg is not None:
            found = self.reg.find_run_by_dir(self.run_dir)
            prev_status = found["status"] if found and cfg.resume else None
            self.name = attach_registry(self.reg, cfg, self.run_dir, config_doc)
        try:
            return self._execute()
        except ValidationError as exc:
            # a resume refused for bad input leaves the run as it was (with the message); a new run failed
            self._fail(prev_status if prev_status in ("stopped", "finished", "failed", "diverged") else "failed",
                       str(exc))
            raise
        except RunError:
            # status already recorded by the raiser (diverged / failed)
            raise
        except KeyboardInterrupt:
            self._fail("stopped", "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001
            if is_oom(exc):
                msg = oom_message(self.batch_size, cfg.grad_accum, self.context, self.device, self.dist.world) \
                    if hasattr(self, "batch_size") else f"out of memory: {exc}"
                self._fail("failed", msg)
                raise RunError(msg, result=self._partial()) from None
            if self.dist.enabled and ("gloo" in str(exc).lower() or "nccl" in str(exc).lower()):
                msg = f"a data-parallel worker died or lost contact ({str(exc).splitlines()[0][:200]})"
            else:
                msg = f"training crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            self._fail("failed", msg)
            raise RunError(msg, result=self._partial()) from exc

    def _partial(self) -> dict | None:
        from engine.lab import checkpoint as ck

        if self.run_dir is None:
            return None
        latest = ck.latest_path(self.run_dir)
        return {"run_dir": str(self.run_dir), "name": self.name, "checkpoint": str(latest) if latest else None,
                "steps": getattr(self, "step", 0)}

    def _barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    # -- setup ------------------------------------------------------------------------------------
    def _execute(self) -> TrainResult:
        import numpy as np
        import torch

        from engine.lab import checkpoint as ck
        from engine.lab.data import DataInput, load_dataset
        from engine.lab.model import Transformer, configure_optimizer
        from engine.lab.presets import get_preset
        from engine.lab.tokenizer import load_tokenizer

        cfg, dist = self.cfg, self.dist
        t_start = time.perf_counter()
        self._install_signals()
        preset = get_preset(cfg.preset)
        self.dtype = resolve_dtype(cfg.dtype, self.device_type)
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.threads:
            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(int(cfg.threads))

        # data and tokenizer (a resumed run reuses its saved tokenizer)
        overrides = {k: getattr(cfg, k) for k in ARCH_OVERRIDES if getattr(cfg, k) is not None}
        self.context = int(overrides.get("context", preset.context))
        inp = DataInput(path=cfg.data, sample=cfg.sample, task=cfg.task, text_col=cfg.text_col,
                        label_col=cfg.label_col, tokenizer=cfg.tokenizer, bpe_vocab=cfg.bpe_vocab,
                        val_fraction=cfg.val_fraction, seed=cfg.seed)
        ckpt = None
        tok = None
        if cfg.resume:
            ckpt = ck.load(self.run_dir)
            tok_path = self.run_dir / "tokenizer.json"
            if tok_path.is_file():
                tok = load_tokenizer(tok_path)
        elif cfg.lora_from:
            from engine.lab.lora import source_tokenizer

            tok = source_tokenizer(cfg)
        ds = load_dataset(inp, self.context, tokenizer=tok)
        self.ds = ds
        self.task = ds.task
        fingerprint = ds.fingerprint()
        if ckpt is not None and ckpt.state.get("data_fingerprint") not in (None, fingerprint):
            raise ValidationError(f"the data of {self.run_dir.name} changed since it was checkpointed "
                                  f"(fingerprint differs); resume needs the same data, or start a new run")

        mcfg = preset.config(ds.tokenizer.vocab_size, n_classes=ds.n_classes if ds.task == "classify" else 0,
                             **overrides)
        if ckpt is not None and ckpt.state.get("model_config") not in (None, mcfg.to_dict()):
            raise ValidationError("the saved model config differs from the one this resume would build")
        self.mcfg = mcfg
        self.max_steps = int(cfg.max_steps or preset.max_steps)
        self.batch_size = int(cfg.batch_size or preset.batch_size)
        lr = float(cfg.lr or preset.lr)
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(preset.warmup_steps,
                                                                           max(1, self.max_steps // 10))
        eval_every = int(cfg.eval_every or preset.eval_every)
        ckpt_every = int(cfg.checkpoint_every or eval_every)
        parts = cfg.grad_accum * dist.world
        if self.batch_size % parts:
            raise ValidationError(f"batch size {self.batch_size} must be divisible by grad_accum × processes "
                                  f"= {cfg.grad_accum} × {dist.world} = {parts}")
        self.micro = self.batch_size // cfg.grad_accum  # rows per micro-batch over all ranks

        # run folder: config and tokenizer (rank 0)
        if dist.main:
            doc = {"train": cfg.to_dict(), "model": mcfg.to_dict(), "data": ds.describe(),
                   "data_fingerprint": fingerprint, "world_size": dist.world, "preset": preset.id,
                   "resolved": {"max_steps": self.max_steps, "batch_size": self.batch_size, "lr": lr,
                                "warmup_steps": warmup, "eval_every": eval_every, "checkpoint_every": ckpt_every,
                                "dtype": self.dtype, "device": self.device_type}}
            if not cfg.resume or not (self.run_dir / "config.json").is_file():
                ck.atomic_write_text(self.run_dir / "config.json", json.dumps(doc, indent=1, default=str))
            if not (self.run_dir / "tokenizer.json").is_file():
                ds.tokenizer.save(self.run_dir / "tokenizer.json")
            if self.reg is not None:
                self.reg.set_status(self.name, "running", config=doc)

        # model, optimizer
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        if self.device_type == "cuda":
            torch.cuda.manual_seed_all(cfg.seed)
        model = Transformer(mcfg).to(self.device)
        if cfg.lora_rank:  # frozen source weights plus PEFT adapters (engine/lab/lora.py)
            from engine.lab.lora import attach

            model = attach(model, cfg, fresh=ckpt is None, model_config=mcfg.to_dict())
        self.raw_model = model
        self.params = model.num_params()
        if cfg.fsdp:
            if not dist.enabled:
                raise ValidationError("--fsdp shards the model over data-parallel processes; launch with "
                                      "torchrun --nproc-per-node N (N >= 2)")
            from torch.distributed.fsdp import fully_shard

            for block in model.blocks:  # one FSDP unit per block, then the root (embedding, norm, head)
                fully_shard(block)
            fully_shard(model)
        optimizer = configure_optimizer(model, lr, cfg.weight_decay, tuple(cfg.betas), self.device_type)
        start_step = 0
        self.best_val, self.best_step, self.evals_since_best = math.inf, None, 0
        self.tokens_seen = 0
        prior_elapsed = 0.0
        if ckpt is not None:
            if bool(ckpt.state.get("fsdp")) != bool(cfg.fsdp):
                raise ValidationError("this run was checkpointed " + ("with" if ckpt.state.get("fsdp") else "without")
                                      + " --fsdp; resume it the same way")
            if cfg.fsdp:
                from torch.distributed.checkpoint.state_dict import (
                    StateDictOptions, set_model_state_dict, set_optimizer_state_dict,
                )

                full = StateDictOptions(full_state_dict=True)
                set_model_state_dict(model, ckpt.model_state_dict(), options=full)
                if ckpt.optimizer is not None:
                    set_optimizer_state_dict(model, optimizer, ckpt.optimizer, options=full)
            else:
                ckpt.restore_model(model)
                ckpt.restore_optimizer(optimizer)
            if dist.main:
                ckpt.restore_rng()
            else:  # only rank 0's RNG states are saved; other ranks re-seed deterministically
                torch.manual_seed(cfg.seed + 1_000_003 * dist.rank + ckpt.step)
            start_step = ckpt.step
            st = ckpt.state
            self.best_val = st.get("best_val_loss") if st.get("best_val_loss") is not None else math.inf
            self.best_step = st.get("best_step")
            self.evals_since_best = int(st.get("evals_since_best", 0))
            self.tokens_seen = int(st.get("tokens_seen", 0))
            prior_elapsed = float(st.get("elapsed_s", 0.0))
            if self.reg is not None:
                self.reg.truncate_metrics(self.name, start_step)
        elif dist.enabled and dist.rank:
            torch.manual_seed(cfg.seed + 1_000_003 * dist.rank)  # own dropout masks; DDP broadcasts weights
        if start_step >= self.max_steps:
            raise ValidationError(f"the run is already at step {start_step}; pass a larger --max-steps "
                                  f"(now {self.max_steps}) to train further")
        self.step = start_step
        self.resumed_from = start_step if ckpt is not None else None

        train_model = model
        if dist.enabled and not cfg.fsdp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(model, device_ids=[dist.local_rank] if self.device_type == "cuda" else None)
        if cfg.compile:
            train_model = torch.compile(train_model)
        self.train_model = train_model

        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == "fp16" else None
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.dtype)
        self.autocast = (lambda: torch.autocast(device_type=self.device_type, dtype=amp_dtype)) if amp_dtype \
            else nullcontext
        spec = mcfg.model_spec()
        self.flops_per_token = spec.training_flops_per_token(self.context)
        if cfg.lora_rank:
            from engine.lab.lora import flops_per_token

            self.flops_per_token = flops_per_token(spec, cfg, self.context)
        self.tokens_per_step = self.batch_size * self.context

        # -- the loop --
        schedule = dict(lr=lr, warmup=warmup, max_steps=self.max_steps, min_lr_ratio=cfg.min_lr_ratio)
        stop_reason, status = "", "finished"
        last_ckpt = ck.latest_path(self.run_dir) if dist.main else None
        step_losses: list[tuple[int, Any, float, Any]] = []  # (step, loss tensor, lr, grad norm) not yet read
        timer = _Timer(self.device_type)
        first_step_s = None
        steady_tokens, steady_time = 0, 0.0
        window_tokens, window_start = 0, None
        last_train_loss = None
        last_val: dict = {}
        poll_every = 1 if not dist.enabled else 10
        last_poll = 0.0
        log_interval = 1 if self.device_type == "cpu" else 10
        cuda = self.device_type == "cuda"
        gpu_peak = self._peak()[0] if cuda else None  # the CPU peak is measured once, at the end
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

        def read_losses() -> None:
            """Turn pending loss tensors into floats (one sync), check divergence, queue metric rows."""
            nonlocal last_train_loss
            if not step_losses:
                return
            values = torch.stack([t for _, t, _, _ in step_losses]).float().cpu().tolist()
            norms = [n for _, _, _, n in step_losses]
            norm_vals = torch.stack(norms).float().cpu().tolist() if norms and norms[0] is not None else [None] * len(values)
            for (s, _, lr_s, _), v, gn in zip(step_losses, values, norm_vals):
                if not math.isfinite(v):
                    step_losses.clear()
                    self._diverged(s, v, lr_s)
                last_train_loss = v
                self.pending.append({"step": s, "train_loss": v, "lr": lr_s, "grad_norm": gn})
            step_losses.clear()

        model.train()
        batch_iter = _BatchFeeder(self, cfg, ds)
        batch = batch_iter.get(0 if cfg.overfit_one_batch else self.step, 0)
        while self.step < self.max_steps:
            s = self.step
            lr_s = lr_at(s, **schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr_s
            t0 = time.perf_counter() if first_step_s is None else None
            if window_start is None:
                window_start = timer.now()
            loss_sum = None
            data_step = 0 if cfg.overfit_one_batch else s
            for m in range(cfg.grad_accum):
                sync = m == cfg.grad_accum - 1
                ctx = train_model.no_sync() if (dist.enabled and not sync and hasattr(train_model, "no_sync")) \
                    else nullcontext()
                with ctx:
                    with self.autocast():
                        loss = self._loss(train_model, batch)
                    # fetch the next micro-batch (or the next step's first) while the GPU works
                    if m + 1 < cfg.grad_accum:
                        nxt = batch_iter.get(data_step, m + 1)
                    elif s + 1 < self.max_steps:
                        nxt = batch_iter.get(0 if cfg.overfit_one_batch else s + 1, 0)
                    else:
                        nxt = None
                    scaled = loss / cfg.grad_accum
                    if self.scaler is not None:
                        self.scaler.scale(scaled).backward()
                    else:
                        scaled.backward()
                    batch = nxt
                d = loss.detach()
                loss_sum = d if loss_sum is None else loss_sum + d
            mean_loss = loss_sum / cfg.grad_accum
            if dist.enabled:
                import torch.distributed as tdist

                tdist.all_reduce(mean_loss, op=tdist.ReduceOp.AVG if self.device_type == "cuda" else tdist.ReduceOp.SUM)
                if self.device_type != "cuda":
                    mean_loss = mean_loss / dist.world
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
            if gnorm is not None and hasattr(gnorm, "full_tensor"):  # FSDP: a DTensor
                gnorm = gnorm.full_tensor()
            if self.scaler is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.step = s + 1
            self.tokens_seen += self.tokens_per_step
            step_losses.append((self.step, mean_loss, lr_s, gnorm))
            if t0 is not None:  # the first step: warmup (and compilation) excluded from throughput
                if cuda:
                    torch.cuda.synchronize()
                first_step_s = time.perf_counter() - t0
                window_start, window_tokens = timer.now(), 0
            else:
                window_tokens += self.tokens_per_step

            is_eval = self.step % eval_every == 0 or self.step == self.max_steps
            is_ckpt = self.step % ckpt_every == 0
            pause = cfg.stop_at is not None and self.step >= cfg.stop_at  # the same on every rank
            now = time.perf_counter()
            if dist.main and self.reg is not None and now - last_poll > 0.5:
                last_poll = now
                if self.reg.stop_requested(self.name):
                    self.stop.reason = self.stop.reason or "stopped by request"
                    self.stop.signal.set()
            if not dist.enabled:
                want_stop = pause or self.stop.signal.is_set()
            elif self.step % poll_every == 0 or is_eval or is_ckpt or pause or self.step == self.max_steps:
                # every rank must leave the loop at the same step: agree on a stop only at these points
                want_stop = self._any_rank(pause or self.stop.signal.is_set())
            else:
                want_stop = False
            boundary = is_eval or is_ckpt or want_stop or self.step % log_interval == 0 or self.step == self.max_steps
            if boundary:
                read_losses()
                if window_tokens:
                    elapsed = timer.now() - window_start
                    if elapsed > 0:
                        rate = window_tokens / elapsed
                        steady_tokens += window_tokens
                        steady_time += elapsed
                        self.pending[-1]["tokens_per_s"] = rate
                        if gpu_peak:
                            self.pending[-1]["mfu"] = rate * self.flops_per_token / (gpu_peak * dist.world)
                    window_tokens, window_start = 0, timer.now()
                if self.pending:
                    self.pending[-1].update(tokens_seen=self.tokens_seen,
                                            elapsed_s=prior_elapsed + time.perf_counter() - t_start,
                                            mem_bytes=self._mem())
            if is_eval:
                last_val = self._evaluate()
                improved = last_val["val_loss"] < self.best_val
                if improved:
                    self.best_val, self.best_step, self.evals_since_best = last_val["val_loss"], self.step, 0
                else:
                    self.evals_since_best += 1
                if self.pending and self.pending[-1]["step"] == self.step:
                    self.pending[-1].update({k: v for k, v in last_val.items() if k in (
                        "val_loss", "val_ppl", "val_acc", "val_f1")})
                else:
                    self.pending.append({"step": self.step, **{k: v for k, v in last_val.items() if k in (
                        "val_loss", "val_ppl", "val_acc", "val_f1")}})
                if cfg.early_stop_patience and self.evals_since_best >= cfg.early_stop_patience \
                        and self.step < self.max_steps:
                    stop_reason = (f"early stopping: validation loss did not improve for {self.evals_since_best} "
                                   f"evaluations (best {self.best_val:.4f} at step {self.best_step})")
                    want_stop = True
                if self.on_eval is not None and not dist.enabled and self.step < self.max_steps \
                        and self.on_eval(self.step, dict(last_val)):
                    stop_reason, status, want_stop = f"pruned at step {self.step} by the caller (sweep)", "stopped", True
                if improved or is_ckpt or want_stop or self.step == self.max_steps:
                    last_ckpt = self._checkpoint(model, optimizer, best=improved, elapsed=prior_elapsed
                                                 + time.perf_counter() - t_start, fingerprint=fingerprint) or last_ckpt
            elif is_ckpt or want_stop:
                last_ckpt = self._checkpoint(model, optimizer, best=False, elapsed=prior_elapsed
                                             + time.perf_counter() - t_start, fingerprint=fingerprint) or last_ckpt
            if (is_eval or is_ckpt) and window_start is not None:
                window_start = timer.now()  # eval and checkpoint time is not training time
            if cfg.sample_every and self.step % cfg.sample_every == 0 and self.step < self.max_steps:
                self._sample()
                window_start = timer.now()
            if boundary:
                self._flush(force=is_eval or want_stop or self.step == self.max_steps)
            if want_stop and self.step < self.max_steps:
                if not stop_reason:
                    stop_reason = self.stop.reason or (f"paused at step {self.step} (stop_at)" if cfg.stop_at
                                                       else "stopped by request")
                    status = "stopped"
                break

        read_losses()
        self._flush(force=True)
        if self.task == "lm" and cfg.sample_tokens:
            self._sample()
        tokens_per_s = steady_tokens / steady_time if steady_time > 0 else (
            self.tokens_per_step / first_step_s if first_step_s else None)
        peak, basis = self._peak()
        achieved = self.flops_per_token * tokens_per_s if tokens_per_s else None
        mfu = achieved / (peak * dist.world) if (achieved and peak) else None
        compile_s = None
        if cfg.compile and first_step_s is not None:
            steady_step = self.tokens_per_step / tokens_per_s if tokens_per_s else 0.0
            compile_s = max(0.0, first_step_s - steady_step)
        result = TrainResult(
            run_dir=str(self.run_dir), name=self.name or self.run_dir.name, status=status, params=self.params,
            steps=self.step, train_loss=last_train_loss, val_loss=last_val.get("val_loss"),
            val_ppl=last_val.get("val_ppl"), val_accuracy=last_val.get("val_acc"), val_f1=last_val.get("val_f1"),
            tokens_per_s=tokens_per_s, checkpoint=str(last_ckpt) if last_ckpt else None,
            best_val_loss=self.best_val if math.isfinite(self.best_val) else None, best_step=self.best_step,
            best_checkpoint=str(ck.latest_path(self.run_dir, "best")) if dist.main and ck.latest_path(
                self.run_dir, "best") else None,
            stopped_reason=stop_reason or ("finished" if status == "finished" else ""), task=self.task,
            device=self.device_type, device_name=device_name(self.device), dtype=self.dtype, world_size=dist.world,
            tokens_seen=self.tokens_seen, elapsed_s=prior_elapsed + time.perf_counter() - t_start,
            train_time_s=steady_time + (first_step_s or 0.0), first_step_s=first_step_s, compile_s=compile_s,
            flops_per_token=self.flops_per_token, achieved_tflops=achieved / 1e12 if achieved else None, mfu=mfu,
            mfu_basis=basis, peak_flops=peak, peak_memory_bytes=self._mem(), resumed_from_step=self.resumed_from,
            samples=list(self.samples),
            trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        )
        if dist.main:
            ck.atomic_write_text(self.run_dir / "result.json", json.dumps(result.to_dict(), indent=1))
            if self.reg is not None:
                self.reg.set_status(self.name, status, summary=result.to_dict())
        return result

    # -- pieces ------------------------------------------------------------------------------------
    def _loss(self, model, batch):
        import torch.nn.functional as F

        from engine.lab.model import lm_loss

        if self.task == "lm":
            x, y = batch
            return lm_loss(model(x), y)
        x, mask, y = batch
        return F.cross_entropy(model(x, mask).float(), y)

    def _any_rank(self, flag: bool) -> bool:
        import torch
        import torch.distributed as tdist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _diverged(self, step: int, value: float, lr_s: float) -> None:
        msg = (f"training diverged at step {step}: the loss became {value} (lr {lr_s:.3g}); nothing was "
               f"checkpointed after the last good step; lower --lr or raise --warmup")
        self._flush(force=True)
        self._fail("diverged", msg)
        raise RunError(msg, result=self._partial())

    def _mem(self) -> int | None:
        import torch

        if self.device_type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return peak_rss_bytes()

    def _peak(self) -> tuple[float | None, str]:
        if self.device_type == "cuda":
            peak, gid = gpu_peak_flops(device_name(self.device), self.dtype)
            if peak is None:
                return None, f"no catalog peak for {device_name(self.device)}"
            return peak, f"datasheet {'fp32' if self.dtype == 'fp32' else 'bf16'} peak of {gid} (engine/catalog/gpus.toml)"
        return cpu_matmul_peak(), "measured fp32 matmul peak of this CPU (1024×1024 torch.mm), not a datasheet figure"

    def _evaluate(self) -> dict:
        """Validation loss over ``eval_batches`` fixed batches (all ranks share each batch); perplexity
        exp(loss) for a language model; accuracy and macro-F1 for a classifier."""
        import torch
        import torch.nn.functional as F

        cfg, dist = self.cfg, self.dist
        model = self.train_model
        model.eval()
        n_cls = self.ds.n_classes if self.task == "classify" else 0
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        confusion = torch.zeros((max(n_cls, 1), max(n_cls, 1)), dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for batch in self.ds.eval_batches("val", self.micro, self.context, cfg.eval_batches, cfg.seed,
                                              rank=dist.rank, world=dist.world, device="cpu"):
                batch = tuple(_to_device(t, self.device) for t in batch)
                if batch[0].shape[0] == 0 and not cfg.fsdp:  # FSDP ranks must run every forward together
                    continue
                with self.autocast():
                    if self.task == "lm":
                        x, y = batch
                        logits = (self.raw_model(x) if dist.enabled else model(x)).float()
                        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                    else:
                        x, mask, y = batch
                        logits = (self.raw_model(x, mask) if dist.enabled else model(x, mask)).float()
                        loss = F.cross_entropy(logits, y, reduction="sum")
                        pred = logits.argmax(dim=-1)
                        confusion.index_put_((y, pred), torch.ones_like(y, dtype=torch.float64), accumulate=True)
                loss_sum += loss.double()  # sums, so ranks with unequal (even empty) shares weigh by rows
                count += y.numel()
        if dist.enabled:
            import torch.distributed as tdist

            for t in (loss_sum, count, confusion):
                tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        model.train()
        val_loss = float(loss_sum / count.clamp_min(1))
        out = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 700.0))}
        if self.task == "classify":
            c = confusion.cpu()
            tp = c.diag()
            precision = tp / c.sum(0).clamp_min(1e-12)
            recall = tp / c.sum(1).clamp_min(1e-12)
            f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
            out["val_acc"] = float(tp.sum() / c.sum().clamp_min(1))
            out["val_f1"] = float(f1.mean())  # macro-F1: unweighted mean over classes
        if self.progress is not None and dist.main:
            self.progress({"event": "eval", "step": self.step, **out})
        return out

    def _checkpoint(self, model, optimizer, *, best: bool, elapsed: float, fingerprint: str):
        from engine.lab import checkpoint as ck

        model_state = optimizer_state = None
        if self.cfg.fsdp:  # gather the shards into full CPU state dicts (a collective: every rank takes part)
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
            )

            full = StateDictOptions(full_state_dict=True, cpu_offload=True)
            model_state = get_model_state_dict(model, options=full)
            optimizer_state = get_optimizer_state_dict(model, optimizer, options=full)
        if not self.dist.main:
            return None
        self._flush(force=True)  # the registry holds every step up to the checkpoint a resume starts from
        state = {"fsdp": bool(self.cfg.fsdp), "model_config": self.mcfg.to_dict(), "train_config": self.cfg.to_dict(),
                 "data_position": {"next_step": self.step, "seed": self.cfg.seed, "batch_size": self.batch_size,
                                   "world_size": self.dist.world},
                 "data_fingerprint": fingerprint, "tokens_seen": self.tokens_seen,
                 "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
                 "best_step": self.best_step, "evals_since_best": self.evals_since_best, "elapsed_s": elapsed,
                 "scheduler": {"step": self.step}}
        return ck.save(self.run_dir, model, optimizer, step=self.step, state=state,
                       val_loss=self.best_val if best else None, best=best, keep_last=self.cfg.keep_checkpoints,
                       model_state=model_state, optimizer_state=optimizer_state)

    def _sample(self) -> None:
        """Text generated from the current weights (temperature 0.8, top-k 40, seeded), into the registry."""
        import torch

        if self.task != "lm" or not self.dist.main or not self.cfg.sample_tokens or self.cfg.fsdp:
            return  # (under FSDP the weights are sharded; sample from the checkpoint: `preflight generate`)
        tok = self.ds.tokenizer
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + self.step)
        prompt = torch.tensor([[tok.eos_id]], device=self.device)
        with torch.no_grad(), self.autocast():
            out = self.raw_model.generate(prompt, self.cfg.sample_tokens, temperature=0.8, top_k=40, generator=gen)
        self.raw_model.train()
        ids = [i for i in out[0, 1:].tolist() if i not in (tok.pad_id,)]
        text = tok.decode(ids)
        self.samples.append(text)
        if self.reg is not None:
            self.reg.add_sample(self.name, self.step, text)

    def _flush(self, force: bool = False) -> None:
        """Write queued metric rows to the registry (at most about once a second unless forced)."""
        now = time.perf_counter()
        if not self.pending or (not force and now - self.last_flush < 1.0):
            return
        rows, self.pending = self.pending, []
        self.last_flush = now
        if self.dist.main and self.reg is not None:
            self.reg.log_metrics(self.name, rows=[{k: v for k, v in r.items() if v is not None or k == "step"}
                                                  for r in rows])
        if self.progress is not None and self.dist.main:
            self.progress({"event": "metrics", "step": rows[-1]["step"], "max_steps": self.max_steps,
                           **{k: v for k, v in rows[-1].items() if k != "step"}})


def _to_device(t, device: str):
    if device == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


class _BatchFeeder:
    """Each micro-batch of each step: this rank's slice of the step's global batch (pinned memory and
    non-blocking copies on CUDA)."""

    def __init__(self, run: _Run, cfg: TrainConfig, ds) -> None:
        self.run, self.cfg, self.ds = run, cfg, ds
        self.parts = cfg.grad_accum * run.dist.world

    def get(self, step: int, micro: int):
        run = self.run
        # rank r's micro-batch m is slice r·grad_accum + m of the global batch cut into grad_accum·world parts
        part = run.dist.rank * self.cfg.grad_accum + micro
        batch = self.ds.get_batch("train", step, run.batch_size, run.context, seed=self.cfg.seed, rank=part,
                                  world=self.parts, device="cpu")
        return tuple(_to_device(t, run.device) for t in batch)


class _Timer:
    """Wall clock for throughput; on CUDA it synchronizes first so queued kernels are counted."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()
