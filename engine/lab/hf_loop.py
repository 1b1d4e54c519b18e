"""The step loop of an HF fine-tuning run (:mod:`engine.lab.hf_train` holds its configuration and parts):
run folder and registry row, model and data, resume, steps, evaluation, checkpoints, stop, export.
:func:`train_hf` is the entry point (``train --hf-model``)."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from engine.errors import RunError, ValidationError
from engine.lab.train_config import TrainResult, lr_at
from engine.lab.train_log import MetricLog


class Loop:
    """One execution of :func:`engine.lab.hf_train.train_hf`."""

    def __init__(self, cfg, registry, progress: Callable[[dict], None] | None) -> None:
        self.cfg, self.reg, self.progress = cfg, registry, progress
        self.name: str | None = None
        self.run_dir: Path | None = None
        self.stop_reason = ""
        self.log = None  # engine.lab.train_log.MetricLog, once the run has its registry row
        self.step = 0

    def on_signal(self, signum, frame) -> None:
        self.stop_reason = f"stopped by signal {signal.Signals(signum).name}"

    # -- folder and registry ----------------------------------------------------------------------
    def _open(self) -> None:
        from engine.lab import checkpoint as ck
        from engine.lab.run_folder import attach_registry, prepare_run_dir

        cfg = self.cfg
        try:
            self.run_dir = prepare_run_dir(cfg)
            if cfg.resume:
                latest = ck.latest_path(self.run_dir)
                if latest is None:
                    raise ValidationError(f"--resume {cfg.resume}: no checkpoint to resume from in {self.run_dir}")
                step = int(json.loads((latest / "state.json").read_text(encoding="utf-8"))["step"])
                if step >= cfg.max_steps:
                    raise ValidationError(f"the run is already at step {step}; pass a larger --max-steps "
                                          f"(now {cfg.max_steps}) to train further")
        except ValidationError as exc:
            queued = self.reg.find_run_by_dir(Path(cfg.out).expanduser()) if not cfg.resume else None
            if queued is not None and queued["status"] == "queued":
                self.reg.set_status(queued["name"], "failed", error=str(exc))
            raise
        self.name = attach_registry(self.reg, cfg, self.run_dir, {"kind": "hf", "hf_train": cfg.to_dict()})
        self.log = MetricLog(self.reg, self.name, self.progress, main=True, max_steps=cfg.max_steps)

    def _fail(self, status: str, message: str) -> None:
        if self.name is not None:
            try:
                self.reg.set_status(self.name, status, error=message)
            except Exception:  # noqa: BLE001 - never mask the original error
                pass

    def run(self) -> TrainResult:
        self._open()
        try:
            return self._run()
        except ValidationError as exc:
            self._fail("stopped" if self.cfg.resume else "failed", str(exc))
            raise
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001
            msg = f"training crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            self._fail("failed", msg)
            raise RunError(msg, result={"run_dir": str(self.run_dir), "name": self.name, "steps": self.step}) from exc

    # -- the run ----------------------------------------------------------------------------------
    def _setup(self):
        import torch

        from engine.lab import checkpoint as ck
        from engine.lab.device import resolve_device
        from engine.lab.hf_train import _defaults, build_model, estimated_trainable, load_data

        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        torch.manual_seed(cfg.seed)
        loaded, model = build_model(cfg, self.device)
        self.loaded, self.model = loaded, model
        data = load_data(cfg, loaded)
        fingerprint = data.fingerprint()
        ckpt = ck.load(self.run_dir) if cfg.resume else None
        if ckpt is not None and ckpt.state.get("data_fingerprint") not in (None, fingerprint):
            raise ValidationError(f"the data of {self.run_dir.name} changed since it was checkpointed; resume needs "
                                  "the same data, or start a new run")
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.total = sum(p.numel() for p in model.parameters())
        self.resolved = _defaults(cfg)
        doc = {"kind": "hf", "hf_train": cfg.to_dict(), "hf": loaded.folder.to_dict(), "data": data.describe(),
               "data_fingerprint": fingerprint, "resolved": {**self.resolved, "device": self.device, "max_steps": cfg.max_steps},
               "memory": loaded.memory.to_dict() if loaded.memory else None, "trainable_params": self.trainable,
               "estimated_trainable_params": estimated_trainable(loaded.spec, cfg), "total_params": self.total}
        if not (self.run_dir / "config.json").is_file():
            ck.atomic_write_text(self.run_dir / "config.json", json.dumps(doc, indent=1, default=str))
        self.reg.set_status(self.name, "running", pid=os.getpid(), config=doc)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.resolved["lr"], weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
        self.best_val, self.tokens_seen, self.prior_elapsed = math.inf, 0, 0.0
        if ckpt is not None:
            from engine.lab.hf_train import restore

            restore(model, ckpt, cfg.method)
            ckpt.restore_optimizer(opt)
            ckpt.restore_rng()
            self.step = ckpt.step
            self.best_val = ckpt.state.get("best_val_loss") or math.inf
            self.tokens_seen = int(ckpt.state.get("tokens_seen", 0))
            self.prior_elapsed = float(ckpt.state.get("elapsed_s", 0.0))
            self.reg.truncate_metrics(self.name, self.step)
        return data, opt, fingerprint, ckpt

    def _run(self) -> TrainResult:
        import torch

        from engine.lab.hf_train import batch_loss, evaluate_loss, export, micro_batch

        cfg = self.cfg
        t_start = time.perf_counter()
        data, opt, fingerprint, ckpt = self._setup()
        resumed_from = self.step if ckpt is not None else None
        r = self.resolved
        schedule = dict(lr=r["lr"], warmup=r["warmup"], max_steps=cfg.max_steps, min_lr_ratio=0.1)
        model = self.model
        status, last_val, last_loss = "finished", {}, None
        steady_tokens, steady_time, last_poll = 0, 0.0, 0.0
        self.steady_steps = 0
        params = [p for p in model.parameters() if p.requires_grad]
        while self.step < cfg.max_steps:
            s = self.step
            t0 = time.perf_counter()
            lr_s = lr_at(s, **schedule)
            for g in opt.param_groups:
                g["lr"] = lr_s
            loss_sum, tokens = 0.0, 0
            for m in range(cfg.grad_accum):
                batch = micro_batch(data, cfg, s, m, self.device)
                loss = batch_loss(model, batch)
                (loss / cfg.grad_accum).backward()
                loss_sum += float(loss.detach())
                tokens += int(batch[0].numel())
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
            opt.step()
            opt.zero_grad(set_to_none=True)
            self.step = s + 1
            self.tokens_seen += tokens
            last_loss = loss_sum / cfg.grad_accum
            if not math.isfinite(last_loss):
                msg = f"training diverged at step {self.step}: the loss became {last_loss} (lr {lr_s:.3g}); lower --lr"
                self.log.flush(force=True)
                self._fail("diverged", msg)
                raise RunError(msg, result={"run_dir": str(self.run_dir), "name": self.name, "steps": self.step})
            dt = time.perf_counter() - t0
            if s > (resumed_from or 0):  # the first step of a process (warmup) is left out of throughput
                steady_tokens, steady_time = steady_tokens + tokens, steady_time + dt
                self.steady_steps += 1
            self.log.pending.append({"step": self.step, "train_loss": last_loss, "lr": lr_s,
                                 "grad_norm": float(gnorm) if gnorm is not None else None,
                                 "tokens_per_s": tokens / dt if dt > 0 else None, "tokens_seen": self.tokens_seen,
                                 "elapsed_s": self.prior_elapsed + time.perf_counter() - t_start})
            now = time.perf_counter()
            if now - last_poll > 0.5:
                last_poll = now
                if self.reg.stop_requested(self.name):
                    self.stop_reason = self.stop_reason or "stopped by request"
            pause = cfg.stop_at is not None and self.step >= cfg.stop_at
            want_stop = (pause or bool(self.stop_reason)) and self.step < cfg.max_steps
            is_eval = self.step % r["eval_every"] == 0 or self.step == cfg.max_steps
            improved = False
            if is_eval:
                last_val = evaluate_loss(model, data, cfg, self.device)
                improved = last_val["val_loss"] < self.best_val
                if improved:
                    self.best_val = last_val["val_loss"]
                self.log.add_eval(self.step, last_val)
                if self.progress:
                    self.progress({"event": "eval", "step": self.step, **last_val})
            if is_eval or want_stop or self.step % r["checkpoint_every"] == 0:
                self._checkpoint(opt, best=improved, fingerprint=fingerprint,
                                 elapsed=self.prior_elapsed + time.perf_counter() - t_start)
            self.log.flush(force=is_eval or want_stop)
            if want_stop:
                status = "stopped"
                self.stop_reason = self.stop_reason or f"paused at step {self.step} (stop_at)"
                break
        self.log.flush(force=True)
        merged = export(self.run_dir, model, self.loaded.tokenizer, cfg.method) if status == "finished" else None
        return self._result(status, last_loss, last_val, steady_tokens, steady_time, t_start, resumed_from, merged)

    def _checkpoint(self, opt, *, best: bool, fingerprint: str, elapsed: float) -> None:
        from engine.lab import checkpoint as ck
        from engine.lab.hf_train import trainable_state

        self.log.flush(force=True)
        state = {"kind": "hf", "hf_train": self.cfg.to_dict(), "data_fingerprint": fingerprint,
                 "tokens_seen": self.tokens_seen, "elapsed_s": elapsed, "scheduler": {"step": self.step},
                 "best_val_loss": self.best_val if math.isfinite(self.best_val) else None}
        ck.save(self.run_dir, self.model, opt, step=self.step, state=state, best=best,
                val_loss=self.best_val if best else None, keep_last=self.cfg.keep_checkpoints,
                model_state=trainable_state(self.model, self.cfg.method))

    def _result(self, status, last_loss, last_val, steady_tokens, steady_time, t_start, resumed_from, merged):
        from engine.lab import checkpoint as ck
        from engine.lab.device import device_name, peak_rss_bytes

        cfg = self.cfg
        latest = ck.latest_path(self.run_dir)
        best = ck.latest_path(self.run_dir, "best")
        result = TrainResult(
            run_dir=str(self.run_dir), name=self.name, status=status, params=int(self.total), steps=self.step,
            train_loss=last_loss, val_loss=last_val.get("val_loss"), val_ppl=last_val.get("val_ppl"),
            val_accuracy=None, val_f1=None, tokens_per_s=steady_tokens / steady_time if steady_time > 0 else None,
            checkpoint=str(latest) if latest else None, best_val_loss=self.best_val if math.isfinite(self.best_val)
            else None, best_checkpoint=str(best) if best else None,
            stopped_reason=self.stop_reason or "finished", task="lm", device=self.device,
            device_name=device_name(self.device), dtype=self.loaded.model.dtype.__repr__().replace("torch.", ""),
            tokens_seen=self.tokens_seen, elapsed_s=self.prior_elapsed + time.perf_counter() - t_start,
            train_time_s=steady_time, peak_memory_bytes=peak_rss_bytes() if self.device == "cpu" else None,
            resumed_from_step=resumed_from, trainable_params=int(self.trainable),
        )
        out = result.to_dict()
        out.update(method=cfg.method, hf_model=str(self.loaded.folder.path), merged=str(merged) if merged else None,
                   predicted_memory_bytes=self.loaded.memory.predicted_bytes if self.loaded.memory else None,
                   **self._step_times(steady_tokens, steady_time))
        ck.atomic_write_text(self.run_dir / "result.json", json.dumps(out, indent=1, default=str))
        self.reg.set_status(self.name, status, summary=out)
        return result


    def _step_times(self, steady_tokens: int, steady_time: float) -> dict:
        """Measured seconds per steady step (the first step of a process left out) beside the predicted ones
        (:func:`engine.lab.hf_train.predict_step_time`) for the same tokens per step."""
        from engine.lab.hf_train import predict_step_time

        if not self.steady_steps:
            return {"measured_step_s": None, "predicted_step_s": None,
                    "step_time_basis": "one step only: no steady step to measure"}
        per_step = steady_tokens / self.steady_steps
        dtype = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(
            str(self.loaded.model.dtype).replace("torch.", ""), "fp32")
        predicted = predict_step_time(self.loaded.spec, self.cfg, per_step, self.device, dtype,
                                      registry=getattr(self.reg, "path", None))
        return {"measured_step_s": steady_time / self.steady_steps, "tokens_per_step": per_step,
                "predicted_step_s": None, **predicted}


def train_hf(cfg, registry=None, progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Run (or resume) an HF fine-tuning run; see the module docstring. ValidationError for bad input,
    RunError when the run fails (recorded in the registry either way)."""
    from engine.lab.hf_train import resolve

    cfg = resolve(cfg)
    if registry is None:
        from engine.store import Registry

        registry = Registry(cfg.registry)
    loop = Loop(cfg, registry, progress)
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old[sig] = signal.signal(sig, loop.on_signal)
            except (ValueError, OSError):
                pass
    try:
        return loop.run()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
