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
- Throughput excludes the first step and time spent evaluating or writing checkpoints; MFU follows PaLM
  (Chowdhery et al. 2022, App. B) against the GPU's datasheet peak or, on a CPU, a measured matmul peak
  (:mod:`engine.lab.throughput`).

The helpers, one module each: the run's folder and registry row (:mod:`engine.lab.run_folder`), the
numbers it trains with (:func:`engine.lab.train_config.plan_run`), data (:mod:`engine.lab.train_data`),
model (:mod:`engine.lab.train_model`), restore and checkpoint state (:mod:`engine.lab.train_state`),
evaluation (:mod:`engine.lab.train_eval`), throughput (:mod:`engine.lab.throughput`) and the
data-parallel collectives (:mod:`engine.lab.distributed`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from engine.errors import RunError, ValidationError
from engine.lab import distributed
from engine.lab.device import device_name, is_oom, oom_message, resolve_device, resolve_dtype
from engine.lab.distributed import Dist, init_distributed
from engine.lab.run_folder import attach_registry, check_resume_target, prepare_run_dir
from engine.lab.throughput import Throughput, memory_bytes, peak_flops
from engine.lab.train_log import MetricLog
from engine.lab.train_config import (  # noqa: F401 - TrainConfig, TrainResult and lr_at are the trainer's API too
    TrainConfig, TrainResult, lr_at, plan_run, resolve_config, validate_config,
)
from engine.lab.train_state import TrainState

METRIC_KEYS = ("val_loss", "val_ppl", "val_acc", "val_f1")  # the evaluation's fields a metric row carries


class _Stop:
    """Stop requests from signals (any thread sets it) and the registry flag (polled by rank 0)."""

    def __init__(self) -> None:
        self.reason = ""
        self.signal = threading.Event()

    def handler(self, signum, frame) -> None:
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
    dist = init_distributed(device)
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

    def __init__(self, cfg: TrainConfig, device: str, dist: Dist, reg, progress) -> None:
        self.cfg, self.dist, self.reg, self.progress = cfg, dist, reg, progress
        self.device_type = device
        self.device = f"cuda:{dist.local_rank}" if device == "cuda" else "cpu"
        self.name: str | None = None
        self.run_dir: Path | None = None
        self.stop = _Stop()
        self._old_handlers: dict = {}
        self._old_threads: int | None = None
        self.plan = None  # the resolved numbers (engine.lab.train_config.RunPlan), once known
        self.state = TrainState()
        self.last_poll = 0.0
        self.samples: list[str] = []
        self.on_eval: Callable[[int, dict], bool] | None = None
        self.last_val: dict = {}
        self.status, self.stop_reason = "finished", ""
        self.last_ckpt = None

    # -- lifecycle --------------------------------------------------------------------------------
    def cleanup(self) -> None:
        if self._old_threads:
            import torch

            torch.set_num_threads(self._old_threads)
        for sig, old in self._old_handlers.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                pass
        if self.dist.enabled:
            distributed.destroy()

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
            distributed.barrier()
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
                msg = oom_message(self.plan.batch_size, cfg.grad_accum, self.context, self.device, self.dist.world) \
                    if self.plan is not None else f"out of memory: {exc}"
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
                "steps": self.state.step}

    # -- setup, then the loop ----------------------------------------------------------------------
    def _setup(self):
        """Everything before the first step: the data, the numbers, the run's files, the model and its
        optimizer, where the run stands (restored on resume), precision and throughput accounting.
        Returns ``(model, optimizer)``: the unwrapped model (its parameters are the ones clipped) and AdamW."""
        import torch

        from engine.lab import checkpoint as ck
        from engine.lab.presets import get_preset
        from engine.lab.train_data import load_run_data
        from engine.lab.train_model import (
            arch_overrides, build_model, configure_torch, flops_per_token, model_config, optimizer_for, precision,
            shard, wrap_for_training,
        )
        from engine.lab.train_state import start_state

        cfg, dist = self.cfg, self.dist
        self.t_start = time.perf_counter()
        self._install_signals()
        preset = get_preset(cfg.preset)
        self.dtype = resolve_dtype(cfg.dtype, self.device_type)
        self._old_threads = configure_torch(cfg, self.device_type)

        # data, model config and the numbers to train with (a resume checks they are the saved ones)
        ckpt = ck.load(self.run_dir) if cfg.resume else None
        self.context = int(arch_overrides(cfg).get("context", preset.context))
        self.ds, self.fingerprint = load_run_data(cfg, self.run_dir, self.context, ckpt)
        self.task = self.ds.task
        self.mcfg = model_config(cfg, preset, self.ds, ckpt)
        plan = self.plan = plan_run(cfg, preset, dist.world)
        self.max_steps = plan.max_steps
        self.log = MetricLog(self.reg, self.name, self.progress, main=dist.main, max_steps=plan.max_steps)
        if dist.main:
            self._write_run_files(preset.id)

        # model, optimizer, and where the run stands (restored from the checkpoint on resume)
        model = self.raw_model = build_model(cfg, self.mcfg, self.device, self.device_type, fresh=ckpt is None)
        self.params = model.num_params()
        shard(model, cfg, dist)
        optimizer = optimizer_for(model, cfg, plan.lr, self.device_type)
        st = self.state = start_state(ckpt, model, optimizer, cfg, dist)
        if ckpt is not None and self.reg is not None:
            self.reg.truncate_metrics(self.name, st.step)
        if st.step >= plan.max_steps:
            raise ValidationError(f"the run is already at step {st.step}; pass a larger --max-steps "
                                  f"(now {plan.max_steps}) to train further")
        self.train_model = wrap_for_training(model, cfg, dist, self.device_type)
        self.scaler, self.autocast = precision(self.dtype, self.device_type)
        self.flops_per_token = flops_per_token(self.mcfg, cfg, self.context)
        self.tokens_per_step = plan.batch_size * self.context
        self.meter = Throughput(self.device_type)
        cuda = self.device_type == "cuda"
        self.gpu_peak = peak_flops(self.device_type, self.device, self.dtype)[0] if cuda else None
        if cuda:  # (the CPU peak is measured once, at the end)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.last_ckpt = ck.latest_path(self.run_dir) if dist.main else None
        return model, optimizer

    def _execute(self) -> TrainResult:
        from engine.lab.train_data import BatchFeeder

        model, optimizer = self._setup()
        cfg, plan, st = self.cfg, self.plan, self.state
        schedule = dict(lr=plan.lr, warmup=plan.warmup, max_steps=plan.max_steps, min_lr_ratio=cfg.min_lr_ratio)
        log_interval = 1 if self.device_type == "cpu" else 10
        model.train()
        feeder = BatchFeeder(self.ds, cfg, self.dist, plan.batch_size, self.context, self.device)
        batch = feeder.get(0 if cfg.overfit_one_batch else st.step, 0)
        while st.step < plan.max_steps:
            lr = lr_at(st.step, **schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            self.meter.begin_step()
            loss, grad_norm, batch = self._step(model, optimizer, feeder, batch)
            st.step += 1
            st.tokens_seen += self.tokens_per_step
            self.log.add_step(st.step, loss, lr, grad_norm)
            self.meter.end_step(self.tokens_per_step)

            last = st.step == plan.max_steps
            is_eval = st.step % plan.eval_every == 0 or last
            is_ckpt = st.step % plan.checkpoint_every == 0
            want_stop = self._want_stop(sync_point=is_eval or is_ckpt or last)
            boundary = is_eval or is_ckpt or want_stop or last or st.step % log_interval == 0
            if boundary:
                self._log_step()
            if is_eval:
                improved = self._evaluate()
                want_stop = self._stop_after_eval() or want_stop
                if improved or is_ckpt or want_stop or last:
                    self._checkpoint(model, optimizer, best=improved)
            elif is_ckpt or want_stop:
                self._checkpoint(model, optimizer, best=False)
            if is_eval or is_ckpt:
                self.meter.restart_window()  # eval and checkpoint time is not training time
            if cfg.sample_every and st.step % cfg.sample_every == 0 and not last:
                self._sample()
                self.meter.restart_window()
            if boundary:
                self.log.flush(force=is_eval or want_stop or last)
            if want_stop and not last:
                if not self.stop_reason:
                    self.stop_reason = self.stop.reason or (f"paused at step {st.step} (stop_at)" if cfg.stop_at
                                                            else "stopped by request")
                    self.status = "stopped"
                break

        self._read_losses()
        self.log.flush(force=True)
        if self.task == "lm" and cfg.sample_tokens:
            self._sample()
        return self._finish(model)

    # -- pieces ------------------------------------------------------------------------------------
    def _write_run_files(self, preset_id: str) -> None:
        """Rank 0: the run's config.json (kept on resume) and tokenizer, and the registry row marked running."""
        from engine.lab import checkpoint as ck

        cfg, ds = self.cfg, self.ds
        doc = {"train": cfg.to_dict(), "model": self.mcfg.to_dict(), "data": ds.describe(),
               "data_fingerprint": self.fingerprint, "world_size": self.dist.world, "preset": preset_id,
               "resolved": self.plan.resolved(self.dtype, self.device_type)}
        if not cfg.resume or not (self.run_dir / "config.json").is_file():
            ck.atomic_write_text(self.run_dir / "config.json", json.dumps(doc, indent=1, default=str))
        if not (self.run_dir / "tokenizer.json").is_file():
            ds.tokenizer.save(self.run_dir / "tokenizer.json")
        if self.reg is not None:
            self.reg.set_status(self.name, "running", config=doc)

    def _step(self, model, optimizer, feeder, batch):
        """One optimizer step: ``grad_accum`` micro-batches forward and backward (DDP syncs gradients on the
        last only), the mean loss over the ranks, gradient clipping, the AdamW step. The next micro-batch (or
        the next step's first) is fetched while the device works. Returns (loss tensor, grad norm, batch)."""
        import torch

        cfg, dist, s = self.cfg, self.dist, self.state.step
        train_model = self.train_model
        data_step = 0 if cfg.overfit_one_batch else s
        loss_sum = None
        for m in range(cfg.grad_accum):
            sync = m == cfg.grad_accum - 1
            ctx = train_model.no_sync() if (dist.enabled and not sync and hasattr(train_model, "no_sync")) \
                else nullcontext()
            with ctx:
                with self.autocast():
                    loss = self._loss(train_model, batch)
                if m + 1 < cfg.grad_accum:
                    nxt = feeder.get(data_step, m + 1)
                elif s + 1 < self.max_steps:
                    nxt = feeder.get(0 if cfg.overfit_one_batch else s + 1, 0)
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
            mean_loss = distributed.mean_over_ranks(mean_loss, dist, self.device_type)
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
        return mean_loss, gnorm, batch

    def _loss(self, model, batch):
        import torch.nn.functional as F

        from engine.lab.model import lm_loss

        if self.task == "lm":
            x, y = batch
            return lm_loss(model(x), y)
        x, mask, y = batch
        return F.cross_entropy(model(x, mask).float(), y)

    def _want_stop(self, *, sync_point: bool) -> bool:
        """Stop after this step? A pause point (``stop_at``, the same on every rank), a signal, or the
        registry's stop flag (polled at most twice a second by rank 0). Every rank must leave the loop at the
        same step, so data-parallel ranks agree on a stop only every 10 steps and at sync points."""
        cfg, step = self.cfg, self.state.step
        pause = cfg.stop_at is not None and step >= cfg.stop_at
        now = time.perf_counter()
        if self.dist.main and self.reg is not None and now - self.last_poll > 0.5:
            self.last_poll = now
            if self.reg.stop_requested(self.name):
                self.stop.reason = self.stop.reason or "stopped by request"
                self.stop.signal.set()
        if not self.dist.enabled:
            return pause or self.stop.signal.is_set()
        if step % 10 == 0 or sync_point or pause:
            return distributed.any_rank(pause or self.stop.signal.is_set(), self.device)
        return False

    def _read_losses(self) -> None:
        bad = self.log.read_losses()
        if bad is not None:
            self._diverged(*bad)

    def _log_step(self) -> None:
        """At a logging boundary: read the losses, close the throughput window, and stamp the newest metric
        row with tokens/s, MFU (CUDA), tokens seen, elapsed time and peak memory."""
        self._read_losses()
        rate = self.meter.close_window()
        if rate is not None:
            self.log.stamp(tokens_per_s=rate)
            if self.gpu_peak:
                self.log.stamp(mfu=rate * self.flops_per_token / (self.gpu_peak * self.dist.world))
        self.log.stamp(tokens_seen=self.state.tokens_seen, elapsed_s=self._elapsed(),
                       mem_bytes=memory_bytes(self.device_type, self.device))

    def _elapsed(self) -> float:
        return self.state.prior_elapsed + time.perf_counter() - self.t_start

    def _diverged(self, step: int, value: float, lr_s: float) -> None:
        msg = (f"training diverged at step {step}: the loss became {value} (lr {lr_s:.3g}); nothing was "
               f"checkpointed after the last good step; lower --lr or raise --warmup")
        self.log.flush(force=True)
        self._fail("diverged", msg)
        raise RunError(msg, result=self._partial())

    def _evaluate(self) -> bool:
        """Evaluate (engine.lab.train_eval), report it, queue it with the step's metric row and track the
        best validation loss; True when it improved."""
        from engine.lab.train_eval import evaluate

        st = self.state
        val = self.last_val = evaluate(self.train_model, self.raw_model, self.ds, cfg=self.cfg, dist=self.dist,
                                       micro=self.plan.micro, context=self.context, device=self.device,
                                       autocast=self.autocast)
        if self.progress is not None and self.dist.main:
            self.progress({"event": "eval", "step": st.step, **val})
        improved = val["val_loss"] < st.best_val
        if improved:
            st.best_val, st.best_step, st.evals_since_best = val["val_loss"], st.step, 0
        else:
            st.evals_since_best += 1
        self.log.add_eval(st.step, {k: v for k, v in val.items() if k in METRIC_KEYS})
        return improved

    def _stop_after_eval(self) -> bool:
        """Early stopping (``early_stop_patience`` evaluations without improvement) and the caller's pruning
        (``on_eval``, single process); never at the last step."""
        cfg, st = self.cfg, self.state
        if st.step >= self.max_steps:
            return False
        stop = False
        if cfg.early_stop_patience and st.evals_since_best >= cfg.early_stop_patience:
            self.stop_reason = (f"early stopping: validation loss did not improve for {st.evals_since_best} "
                                f"evaluations (best {st.best_val:.4f} at step {st.best_step})")
            stop = True
        if self.on_eval is not None and not self.dist.enabled and self.on_eval(st.step, dict(self.last_val)):
            self.stop_reason, self.status, stop = f"pruned at step {st.step} by the caller (sweep)", "stopped", True
        return stop

    def _checkpoint(self, model, optimizer, *, best: bool) -> None:
        """Save weights, optimizer and the resume state (every rank gathers under FSDP; rank 0 writes)."""
        from engine.lab import checkpoint as ck
        from engine.lab.train_state import full_state_dicts, resume_doc

        model_state = optimizer_state = None
        if self.cfg.fsdp:
            model_state, optimizer_state = full_state_dicts(model, optimizer)
        if not self.dist.main:
            return
        self.log.flush(force=True)  # the registry holds every step up to the checkpoint a resume starts from
        st = self.state
        doc = resume_doc(st, self.cfg, self.mcfg, batch_size=self.plan.batch_size, world=self.dist.world,
                         fingerprint=self.fingerprint, elapsed=self._elapsed())
        path = ck.save(self.run_dir, model, optimizer, step=st.step, state=doc,
                       val_loss=st.best_val if best else None, best=best, keep_last=self.cfg.keep_checkpoints,
                       model_state=model_state, optimizer_state=optimizer_state)
        self.last_ckpt = path or self.last_ckpt

    def _sample(self) -> None:
        """Text generated from the current weights (engine.lab.train_eval.sample_text), into the registry."""
        from engine.lab.train_eval import sample_text

        if self.task != "lm" or not self.dist.main or not self.cfg.sample_tokens or self.cfg.fsdp:
            return  # (under FSDP the weights are sharded; sample from the checkpoint: `preflight generate`)
        text = sample_text(self.raw_model, self.ds.tokenizer, self.cfg.sample_tokens,
                           seed=self.cfg.seed + self.state.step, device=self.device, autocast=self.autocast)
        self.samples.append(text)
        if self.reg is not None:
            self.reg.add_sample(self.name, self.state.step, text)

    def _finish(self, model) -> TrainResult:
        """The run's result: written to result.json and the registry (rank 0), and returned."""
        from engine.lab import checkpoint as ck

        cfg, dist, st, val = self.cfg, self.dist, self.state, self.last_val
        peak, basis = peak_flops(self.device_type, self.device, self.dtype)
        speed = self.meter.summary(tokens_per_step=self.tokens_per_step, flops_per_token=self.flops_per_token,
                                   world=dist.world, compiled=bool(cfg.compile), peak=peak)
        best = ck.latest_path(self.run_dir, "best") if dist.main else None
        result = TrainResult(
            run_dir=str(self.run_dir), name=self.name or self.run_dir.name, status=self.status, params=self.params,
            steps=st.step, train_loss=self.log.last_train_loss, val_loss=val.get("val_loss"),
            val_ppl=val.get("val_ppl"), val_accuracy=val.get("val_acc"), val_f1=val.get("val_f1"),
            checkpoint=str(self.last_ckpt) if self.last_ckpt else None, best_val_loss=st.best_val_or_none,
            best_step=st.best_step, best_checkpoint=str(best) if best else None,
            stopped_reason=self.stop_reason or ("finished" if self.status == "finished" else ""), task=self.task,
            device=self.device_type, device_name=device_name(self.device), dtype=self.dtype, world_size=dist.world,
            tokens_seen=st.tokens_seen, elapsed_s=self._elapsed(), flops_per_token=self.flops_per_token,
            mfu_basis=basis, peak_flops=peak, peak_memory_bytes=memory_bytes(self.device_type, self.device),
            resumed_from_step=st.resumed_from, samples=list(self.samples),
            trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad), **speed,
        )
        if dist.main:
            ck.atomic_write_text(self.run_dir / "result.json", json.dumps(result.to_dict(), indent=1))
            if self.reg is not None:
                self.reg.set_status(self.name, self.status, summary=result.to_dict())
        return result
