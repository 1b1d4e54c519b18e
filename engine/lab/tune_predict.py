"""Sweeps, part 2: a trial's configuration from TPE's suggestion, and its time and cost predicted before it
starts (estimator FLOPs over the measured throughput, then the speed fitted to the study's trials; see
:mod:`engine.lab.tune` for the formula and sources), and what the predictions measure first (the data, the probe)."""

from __future__ import annotations

import time
from typing import Any

from engine.errors import ValidationError
from engine.lab.tune_space import TIMED_EVALS, SweepInput


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
    if "warmup_steps" in values and values.get("max_steps"):
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


def _work(cfg, data_info: dict, throughput: dict) -> dict[str, float]:
    """What a trial's time rests on: training FLOPs per step, FLOPs per evaluation, the evaluations it
    makes, the probe's FLOP/s and the measured setup (the planted objective: ``step_s`` per step, 1 "FLOP"
    per second)."""
    from engine.lab.presets import get_preset

    preset = get_preset(cfg.preset)
    steps = int(cfg.max_steps or preset.max_steps)
    eval_every = int(cfg.eval_every or preset.eval_every)
    n_evals = steps // eval_every + (0 if steps % eval_every == 0 else 1)
    if data_info.get("objective") == "planted":
        return {"steps": steps, "step_flops": float(data_info.get("step_s", 0.0)), "eval_flops": 0.0,
                "n_evals": n_evals, "rate": 1.0, "setup_s": float(data_info.get("setup_s", 0.0)), "overhead_s": 0.0}
    vocab = int(data_info["vocab"].get(cfg.tokenizer, 258))
    overrides = {k: getattr(cfg, k) for k in ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "context",
                                              "dropout") if getattr(cfg, k) is not None}
    mcfg = preset.config(vocab, n_classes=int(data_info.get("n_classes") or 0), **overrides)
    context = int(overrides.get("context", preset.context))
    batch = int(cfg.batch_size or preset.batch_size)
    per_row = _tokens_per_row(data_info, cfg.tokenizer, batch, context)
    f_tok = mcfg.model_spec().training_flops_per_token(context)
    return {"steps": steps, "step_flops": f_tok * batch * per_row,
            "eval_flops": f_tok / 3.0 * cfg.eval_batches * batch * per_row, "n_evals": n_evals,
            "rate": float(throughput["flops_per_s_per_worker"]), "setup_s": float(data_info.get("setup_s", 0.0)),
            "overhead_s": float(throughput.get("step_overhead_s") or 0.0)}


def predict_trial(cfg, data_info: dict, throughput: dict, price: dict, speed: dict | None = None) -> dict[str, float]:
    """Predicted seconds, FLOPs and USD of one trial (see :mod:`engine.lab.tune`). Without ``speed``: FLOPs
    over the probe's FLOP/s plus the probe's fixed cost per step and the measured data setup ("raw"). With ``speed`` (:func:`fit_speed`, from the
    study's finished trials): ``per_flop_s`` × FLOPs + ``per_step_s`` per step + the trials' median setup."""
    w = _work(cfg, data_info, throughput)
    eval_flops = w["eval_flops"] * w["n_evals"]
    if speed:
        per_step = speed["per_flop_s"] * w["step_flops"] + speed["per_step_s"]
        setup = speed["setup_s"] + speed["per_flop_s"] * eval_flops
    else:
        per_step = w["step_flops"] / w["rate"] + w["overhead_s"]
        setup = w["setup_s"] + eval_flops / w["rate"]
    seconds = setup + w["steps"] * per_step
    flops = w["step_flops"] * w["steps"] + eval_flops if data_info.get("objective") != "planted" else 0.0
    return {"seconds": seconds, "flops": flops, "usd": seconds / 3600 * price["usd_per_worker_hour"],
            "setup_s": setup, "per_step_s": per_step, "step_flops": w["step_flops"],
            "eval_flops": w["eval_flops"]}


def size_to_seconds(cfg, seconds: float, data_info: dict, throughput: dict, price: dict, speed: dict | None = None):
    """``cfg`` with the steps it is predicted to train in ``seconds`` (an equal-time trial) and
    ``TIMED_EVALS`` evaluations spread over them (the prediction is a fixed part plus a per-step part;
    :func:`predict_trial`, with the study's fitted ``speed`` when there is one). Returns ``(cfg, steps)``;
    at least ``2 * TIMED_EVALS`` steps even when that overruns (the caller checks the cheapest
    configuration fits at all)."""
    from dataclasses import replace

    def predicted(n: int) -> float:
        return predict_trial(replace(cfg, max_steps=n, eval_every=-(-n // TIMED_EVALS)), data_info, throughput,
                             price, speed)["seconds"]

    one, two = predicted(1000), predicted(2000)
    per_step = (two - one) / 1000.0
    if per_step <= 0:
        raise ValidationError("equal-time trials need this machine's speed per step; none was measured")
    fixed_s = one - 1000.0 * per_step
    steps = max(2 * TIMED_EVALS, int((float(seconds) - fixed_s) / per_step))
    warmup = None if cfg.warmup_steps is None else min(int(cfg.warmup_steps), steps)
    return replace(cfg, max_steps=steps, eval_every=-(-steps // TIMED_EVALS), warmup_steps=warmup), steps


def fit_speed(trials, flops_per_s: float) -> dict[str, Any] | None:
    """This machine's speed learned from the study's finished trials (complete or pruned): the training
    time of a step as ``per_flop_s`` × its FLOPs + ``per_step_s``, the per-step overhead of framework and
    optimizer that makes small models run far below the probe's FLOP/s on a CPU. With trials of several
    sizes it is a least-squares line through each trial's measured seconds per step against its FLOPs per
    step; with one trial (or one size, or a line that comes out negative) the slope is the probe's
    ``flops_per_s`` and the overhead is what the trials measured beyond it. ``setup_s`` is the median of
    the rest of a trial's time (data, model build, checkpoints; evaluations at the same FLOP rate taken
    off). None before any trial measured its steps."""
    import statistics

    import numpy as np

    pts = []
    for t in trials:
        ua = attrs(t)
        steps, train_s = int(ua.get("steps") or 0), float(ua.get("train_s") or 0.0)
        if steps >= 2 and train_s > 0 and ua.get("step_flops") is not None and ua.get("measured_s"):
            evals = steps // max(1, int((ua.get("config") or {}).get("eval_every") or steps))
            pts.append((float(ua["step_flops"]), train_s / steps, float(ua["measured_s"]) - train_s,
                        float(ua.get("eval_flops") or 0.0) * evals))
    if not pts:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    a = 1.0 / float(flops_per_s)
    b = max(0.0, float(np.median(y - a * x)))
    if len(pts) >= 2 and x.max() > 1.2 * x.min():
        slope, icpt = np.polyfit(x, y, 1)
        if slope > 0 and icpt >= 0:
            a, b = float(slope), float(icpt)
    setup = statistics.median(max(0.0, other - a * ev) for _, _, other, ev in pts)
    return {"per_flop_s": a, "per_step_s": b, "setup_s": setup, "n": len(pts)}


def measure_data(inp: SweepInput, space: dict) -> dict[str, Any]:
    """What predictions need from the data: vocabulary per tokenizer, classes, row lengths, load time."""
    from engine.lab.data import DataInput, load_dataset

    tokenizers = space["params"].get("tokenizer", {}).get("choices") or [space["fixed"].get("tokenizer", "byte")]
    context = int(space["fixed"].get("context") or 64)
    info: dict[str, Any] = {"vocab": {}, "row_lengths": {}, "n_classes": 0, "objective": "train"}
    setup = []
    for tok in tokenizers:
        t0 = time.perf_counter()
        ds = load_dataset(DataInput(path=inp.data, sample=inp.sample, task=inp.task, text_col=inp.text_col,
                                    label_col=inp.label_col, tokenizer=tok,
                                    bpe_vocab=int(space["fixed"].get("bpe_vocab", 4096)), seed=inp.seed), context)
        setup.append(time.perf_counter() - t0)
        info["vocab"][tok] = ds.tokenizer.vocab_size
        if ds.task == "classify":
            info["n_classes"] = ds.n_classes
            info["row_lengths"][tok] = [int(len(r)) for r in ds.train_x[:2000]]
    info["setup_s"] = max(setup) + 0.5  # + model build, first checkpoint (measured order of magnitude)
    return info


def typical_trial(space, base, data_info, throughput, price, seed) -> dict[str, float]:
    """Predicted seconds of 32 random configurations of the space (median and cheapest)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seconds, steps = [], []
    timed_s = space["fixed"].get("trial_seconds")
    for _ in range(32):
        t = study.ask()
        cfg, _ = trial_config(base, space, suggest(t, space))
        if timed_s:
            cfg, n = size_to_seconds(cfg, timed_s, data_info, throughput, price)
            steps.append(n)
        seconds.append(predict_trial(cfg, data_info, throughput, price)["seconds"])
        study.tell(t, 0.0)
    seconds.sort()
    out = {"median_s": seconds[len(seconds) // 2], "min_s": seconds[0], "max_s": seconds[-1]}
    if timed_s:
        steps.sort()
        out |= {"median_steps": steps[len(steps) // 2], "min_steps": steps[0], "max_steps": steps[-1]}
        if out["median_s"] > 1.5 * timed_s:  # most configurations cannot train 2 × TIMED_EVALS steps in the time
            raise ValidationError(
                f"--trial-seconds {timed_s:g} is too short for this space: loading the data and "
                f"{2 * TIMED_EVALS} steps take about {out['median_s']:.0f} s on this machine")
    return out


def measure_throughput(registry_path: str | None, device: str, preset: str, context: int, threads: int,
                       n_cores: int) -> dict[str, Any]:
    """FLOP/s for the predictions: the latest finished calibration on this device in the registry, or
    (none there) a quick measured probe of the preset; scaled to one worker's share of the cores."""
    from engine.artifacts import latest_calibration

    try:
        s = latest_calibration(device=device, registry=registry_path)
    except ValidationError:
        s = None
    if s is not None and s.get("achieved_tflops"):
        name = s["name"]
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
    # A step's fixed cost (framework, optimizer, kernel launches) beside its FLOPs: the same preset at batch 2
    # does an eighth of the FLOPs or less and takes more than an eighth of the time; what its step takes beyond
    # its FLOPs at the rate above is the overhead (small models on a CPU run far below the FLOP rate without it).
    from engine.lab.calibrate import CalibrateInput, calibrate

    small = calibrate(CalibrateInput(preset=preset, device=device, steps=3, warmup=1, context=context, batch_size=2))
    overhead = max(0.0, small.step_s - small.achieved_tflops * 1e12 * small.step_s / rate)
    basis += f"; a step's fixed cost {overhead * 1e3:.1f} ms (the same preset at batch 2)"
    return {"flops_per_s": rate, "flops_per_s_per_worker": rate * share, "step_overhead_s": overhead,
            "source": source, "basis": basis, "threads_per_worker": threads}


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
