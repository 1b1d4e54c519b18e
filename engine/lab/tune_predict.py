"""Sweeps, part 2: a trial's configuration from TPE's suggestion, and its time and cost predicted before it
starts (estimator FLOPs over the measured throughput; see :mod:`engine.lab.tune` for the formula and sources)."""

from __future__ import annotations

from typing import Any

from engine.errors import ValidationError
from engine.lab.tune_space import SweepInput


# ---- configurations and predictions -----------------------------------------------------------------------
def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's parameters from the space (Optuna's suggest_* API)."""
    out = {}
    for name, spec in space["params"].items():
        if spec["kind"] == "categorical":
            out[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["kind"] == "int":
            out[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            out[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
    return out


def trial_config(base: dict[str, Any], space: dict[str, Any], params: dict[str, Any]):
    """The TrainConfig of one trial: the sweep's data, the space's fixed values and the sampled ``params``.
    Heads that do not divide the width (or KV heads the heads) are lowered to the nearest divisor, and the
    FFN width follows the model width at the preset's ratio; ``adjusted`` lists what changed."""
    from engine.lab.presets import get_preset
    from engine.lab.trainer import TrainConfig

    fixed = dict(space["fixed"])
    preset = get_preset(fixed.pop("preset", base.get("preset", "tiny")))
    fixed.pop("step_s", None)
    values = {**fixed, **params}
    adjusted = {}
    d_model = int(values.get("d_model") or preset.d_model)
    heads = int(values.get("n_heads") or preset.n_heads)
    if d_model % heads:
        new = max(h for h in range(1, heads + 1) if d_model % h == 0)
        adjusted["n_heads"], heads = new, new
    if "n_heads" in values or "d_model" in values:
        values["n_heads"] = heads
    kv = int(values.get("n_kv_heads") or min(heads, preset.n_kv_heads))
    if heads % kv or kv > heads:
        new = max(k for k in range(1, min(kv, heads) + 1) if heads % k == 0)
        adjusted["n_kv_heads"], kv = new, new
    values["n_kv_heads"] = kv
    if "d_model" in values and "d_ff" not in values:
        values["d_ff"] = max(16, int(round(d_model * preset.d_ff / preset.d_model / 16)) * 16)
    if "warmup_steps" in values:
        values["warmup_steps"] = min(int(values["warmup_steps"]), int(values["max_steps"]))
    keys = {"data", "sample", "task", "text_col", "label_col", "seed", "registry", "device", "threads"}
    cfg = TrainConfig(**{k: v for k, v in base.items() if k in keys}, preset=preset.id,
                      **{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__},
                      sample_tokens=0, keep_checkpoints=1)
    return cfg, adjusted


def _tokens_per_row(data_info: dict, tokenizer: str, batch: int, context: int) -> float:
    """Tokens a step trains per row: the context for a language model; for a classifier, the expected
    longest row of a batch (rows are padded to it), from the row lengths measured on the data."""
    lengths = (data_info.get("row_lengths") or {}).get(tokenizer)
    if not lengths:
        return float(context)
    import numpy as np

    arr = np.minimum(np.asarray(lengths), context)
    rng = np.random.default_rng(0)
    draws = rng.choice(arr, size=(64, min(batch, len(arr))))
    return float(draws.max(axis=1).mean())


def predict_trial(cfg, data_info: dict, throughput: dict, price: dict) -> dict[str, float]:
    """Predicted seconds, FLOPs and USD of one trial (see the module docstring)."""
    from engine.lab.presets import get_preset

    preset = get_preset(cfg.preset)
    if data_info.get("objective") == "planted":
        seconds = cfg.max_steps * float(data_info.get("step_s", 0.0)) + float(data_info.get("setup_s", 0.0))
        return {"seconds": seconds, "flops": 0.0, "usd": seconds / 3600 * price["usd_per_worker_hour"],
                "setup_s": float(data_info.get("setup_s", 0.0)), "per_step_s": float(data_info.get("step_s", 0.0))}
    vocab = int(data_info["vocab"].get(cfg.tokenizer, 258))
    overrides = {k: getattr(cfg, k) for k in ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "context",
                                              "dropout") if getattr(cfg, k) is not None}
    mcfg = preset.config(vocab, n_classes=int(data_info.get("n_classes") or 0), **overrides)
    context = int(overrides.get("context", preset.context))
    batch = int(cfg.batch_size or preset.batch_size)
    steps = int(cfg.max_steps or preset.max_steps)
    per_row = _tokens_per_row(data_info, cfg.tokenizer, batch, context)
    f_tok = mcfg.model_spec().training_flops_per_token(context)
    train_flops = f_tok * steps * batch * per_row
    eval_every = int(cfg.eval_every or preset.eval_every)
    n_evals = steps // eval_every + (0 if steps % eval_every == 0 else 1)
    eval_flops = f_tok / 3.0 * n_evals * cfg.eval_batches * batch * per_row
    rate = float(throughput["flops_per_s_per_worker"])
    setup = float(data_info.get("setup_s", 0.0))
    seconds = (train_flops + eval_flops) / rate + setup
    return {"seconds": seconds, "flops": train_flops + eval_flops, "usd": seconds / 3600 * price["usd_per_worker_hour"],
            "setup_s": setup, "per_step_s": (seconds - setup) / steps}


def correction(trials) -> tuple[float, int]:
    """The study's own correction of the FLOP-based prediction: the median of measured / raw predicted
    seconds over finished trials (a pruned trial's raw prediction is re-scaled to the steps it ran), and
    how many trials it rests on; 1.0 before any trial finished. Small models on a CPU run far below the
    calibrated FLOP/s (per-operation overhead dominates), and a shared machine's load changes; the factor
    absorbs both and the report shows raw and corrected predictions apart."""
    import statistics

    ratios = []
    for t in trials:
        ua = attrs(t)
        if ua.get("measured_s") and ua.get("per_step_s") is not None and ua.get("steps"):
            raw = float(ua.get("setup_s", 0.0)) + int(ua["steps"]) * float(ua["per_step_s"])
            if raw > 0:
                ratios.append(float(ua["measured_s"]) / raw)
    if not ratios:
        return 1.0, 0
    return min(20.0, max(0.05, statistics.median(ratios))), len(ratios)


def measure_throughput(registry_path: str | None, device: str, preset: str, context: int, threads: int,
                       n_cores: int) -> dict[str, Any]:
    """FLOP/s for the predictions: the latest finished calibration on this device in the registry, or
    (none there) a quick measured probe of the preset; scaled to one worker's share of the cores."""
    from engine.store import Registry

    found = None
    try:
        runs = Registry(registry_path).list_runs(kind="calibrate")
        done = runs[runs["status"] == "finished"]
        for _, row in done.iterrows():
            s = row["summary"] or {}
            if s.get("device") == device and s.get("achieved_tflops"):
                found = (row["name"], s)
                break
    except ValidationError:
        found = None
    if found is not None:
        name, s = found
        rate = float(s["achieved_tflops"]) * 1e12
        basis = (f"calibration {name!r} in the registry ({s.get('preset')}, {s.get('device_name')}, "
                 f"{rate / 1e9:.2f} GFLOP/s on all cores)")
        source = "calibration"
    else:
        from engine.lab.calibrate import CalibrateInput, calibrate

        r = calibrate(CalibrateInput(preset=preset, device=device, steps=3, warmup=1, context=context))
        rate = r.achieved_tflops * 1e12
        basis = (f"no calibration in the registry: a quick probe (3 timed steps of {r.preset}, batch {r.batch_size}, "
                 f"context {r.context}) measured {rate / 1e9:.2f} GFLOP/s; run `preflight calibrate` for a better figure")
        source = "probe"
    share = min(1.0, threads / max(1, n_cores)) if device == "cpu" else 1.0
    return {"flops_per_s": rate, "flops_per_s_per_worker": rate * share, "source": source, "basis": basis,
            "threads_per_worker": threads}


def machine_price(inp: SweepInput, device: str, n_cores: int) -> dict[str, Any]:
    if inp.usd_per_hour is not None:
        per_hour, basis = float(inp.usd_per_hour), "--usd-per-hour"
    elif device == "cpu":
        from engine.catalog import defaults

        per_hour = defaults()["cpu_usd_per_vcpu_hour"] * n_cores
        basis = (f"{n_cores} vCPU × ${defaults()['cpu_usd_per_vcpu_hour']}/vCPU-hour (engine/catalog/defaults.toml: "
                 f"AWS c7i on-demand)")
    else:
        if inp.budget_usd is not None:
            raise ValidationError("--budget-usd on a GPU needs --usd-per-hour (what this machine costs per hour)")
        per_hour, basis = 0.0, "no price given (--usd-per-hour)"
    return {"usd_per_hour": per_hour, "usd_per_worker_hour": per_hour / max(1, inp.workers), "basis": basis}


def attrs(t) -> dict[str, Any]:
    """A trial's bookkeeping: what its worker wrote when it started ("meta") and ended ("result"), and the
    outcome a reaper or the budget check set directly."""
    ua = t.user_attrs
    out = {**(ua.get("meta") or {}), **{k: v for k, v in (ua.get("result") or {}).items() if v is not None}}
    for key in ("pid", "outcome", "error"):
        if ua.get(key) is not None:
            out[key] = ua[key]
    return out
