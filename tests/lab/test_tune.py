"""Sweeps: TPE finds a planted sharp optimum, pruning saves trial-steps without changing the best, two workers
share one study without losing or duplicating a trial, a SIGKILLed worker's trial is marked failed and the
study resumes, budgets stop the sweep, the real trainer path registers each trial as a run, bad input is
one line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.lab import tune, tune_space
from engine.lab.tune import prepare, run_sweep, summary, worker_main

from engine.lab.tune_space import PLANTED_LR, SweepInput

ROOT = Path(__file__).resolve().parents[2]
GRID = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 1e-1, 3e-1]


def planted(tmp_path, name="s", steps=100, every=10, step_s=0.0, lr=None, **kw) -> SweepInput:
    space = {"fixed": {"max_steps": steps, "eval_every": every, "step_s": step_s},
             "params": {"lr": lr or {"low": 1e-5, "high": 1.0, "log": True}}}
    return SweepInput(objective="planted", space=space, out=str(tmp_path / name), **kw)


def _run_in_process(inp: SweepInput):
    study_dir, _ = prepare(inp)
    worker_main(study_dir, 0)
    return summary(study_dir)


def test_planted_sharp_learning_rate_is_found(tmp_path):
    res = _run_in_process(planted(tmp_path, trials=25, steps=50, every=10))
    best = res.best_params["lr"]
    # the optimum is sharp: 8 nats per decade² away from 3e-3; found within 0.15 decades (±40%)
    assert abs(math.log10(best / PLANTED_LR)) < 0.15, res.best_params
    assert len(res.trials) == 25 and res.n_failed == 0


def test_pruning_saves_40_percent_of_trial_steps_with_the_same_best(tmp_path):
    pruned = _run_in_process(planted(tmp_path, "p", trials=16, lr={"choices": GRID}, seed=0))
    full = _run_in_process(planted(tmp_path, "f", trials=16, lr={"choices": GRID}, seed=0, prune=False))
    assert full.pruned == [] and pruned.pruned
    assert (pruned.best_params, pruned.best_value) == (full.best_params, full.best_value) == (
        {"lr": PLANTED_LR}, pytest.approx(1.0 + 5 * math.exp(-4)))
    saved = 1 - pruned.trial_steps / full.trial_steps
    assert saved >= 0.40, (pruned.trial_steps, full.trial_steps)


def test_budget_stops_the_sweep_before_a_trial_that_would_not_fit(tmp_path):
    # each trial takes 25 × 0.02 = 0.5 s; a 1.2 s budget fits two
    res = _run_in_process(planted(tmp_path, trials=10, steps=25, every=5, step_s=0.02, budget_minutes=0.02,
                                  prune=False))
    ran = [t for t in res.trials if t["outcome"] != "skipped"]
    assert 1 <= len(ran) <= 2 and "budget reached" in res.stopped_reason
    assert res.spent_s <= 1.2 + 0.3
    with pytest.raises(ValidationError, match=r"smaller than one trial: a trial in this space takes about 10 s"):
        prepare(planted(tmp_path, "tiny-budget", trials=3, steps=100, step_s=0.1, budget_minutes=0.05))


@pytest.mark.timeout(240)
def test_two_workers_share_one_study_without_lost_or_duplicated_trials(tmp_path):
    res = run_sweep(planted(tmp_path, trials=8, steps=20, every=5, step_s=0.01, workers=2))
    numbers = [t["number"] for t in res.trials]
    assert sorted(numbers) == list(range(8)) and len(set(numbers)) == 8
    assert all(t["state"] in ("complete", "pruned") for t in res.trials), res.trials
    assert {t["worker"] for t in res.trials if t["outcome"] != "duplicate"} == {0, 1}
    assert [w["exit_code"] for w in res.workers] == [0, 0]
    assert json.loads((Path(res.study_dir) / "result.json").read_text())["study"] == "s"


@pytest.mark.timeout(240)
def test_sigkilled_worker_trial_is_failed_and_the_study_resumes(tmp_path):
    inp = planted(tmp_path, trials=3, steps=40, every=10, step_s=0.1, prune=False)
    study_dir, doc = prepare(inp)
    proc = tune.spawn_worker(study_dir, 0)
    study = tune.open_study(study_dir, doc)
    deadline = time.time() + 120
    while time.time() < deadline:
        running = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("pid") == proc.pid]
        if running:
            break
        time.sleep(0.2)
    assert running, "the worker never started a trial"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = run_sweep(inp)  # the same command again: resume
    killed = [t for t in res.trials if t["outcome"] == "killed"]
    assert [t["number"] for t in killed] == [running[0].number] and killed[0]["state"] == "fail"
    assert "worker was killed" in killed[0]["error"]
    done = [t for t in res.trials if t["state"] in ("complete", "pruned")]
    assert len(done) == 3 and res.stopped_reason == "3 trials done"


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    base = dict(objective="planted", out=str(tmp_path / "s"))
    cases = [
        ({"params": {}}, "empty"),
        ({"params": {"lr": {"choices": [1e-3]}}}, "single point"),
        ({"params": {"lr": {"low": 1e-2, "high": 1e-4, "log": True}}}, "reversed"),
        ({"params": {"lr": {"low": 1e-3, "high": 1e-3}}}, "single point"),
        ({"params": {"colour": {"choices": [1, 2]}}}, "unknown search parameter"),
    ]
    for space, msg in cases:
        with pytest.raises(ValidationError, match=msg):
            prepare(SweepInput(space=space, **base))
    ok = {"params": {"lr": {"low": 1e-4, "high": 1e-2}}}
    with pytest.raises(ValidationError, match="more than this machine"):
        prepare(SweepInput(space=ok, workers=tune_space.cores() + 1, **base))
    for bad in ("a/b", "..", "x\\y"):
        with pytest.raises(ValidationError, match="path or special characters"):
            prepare(SweepInput(space=ok, name=bad, **base))
    (tmp_path / "space.toml").write_text("[params.lr]\nlow = 0.1\nhigh = 0.01\n")
    with pytest.raises(ValidationError, match="reversed"):
        prepare(SweepInput(space=str(tmp_path / "space.toml"), **base))
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    with pytest.raises(ValidationError, match="starting a sweep is turned off"):
        prepare(SweepInput(space=ok, **base))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)


@pytest.mark.timeout(300)
def test_real_trainer_sweep_registers_runs_and_records_predictions(tmp_path):
    from engine.store import Registry

    space = tmp_path / "space.toml"
    space.write_text('[fixed]\nmax_steps = 6\neval_every = 2\neval_batches = 1\ncontext = 16\nbatch_size = 4\n'
                     '[params.lr]\nlow = 1e-4\nhigh = 3e-2\nlog = true\n'
                     '[params.n_layers]\nlow = 1\nhigh = 2\n[params.d_model]\nchoices = [32]\n')
    out = tmp_path / "study"
    p = _cli("sweep", "--sample", "arithmetic", "--space", str(space), "--trials", "3", "--budget-minutes", "20",
             "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    for key in ("study", "trials", "best_params", "best_value", "pruned", "predicted_vs_measured"):
        assert key in d
    assert d["study"] == "study" and len(d["trials"]) == 3
    reg = Registry()
    values = []
    for t in d["trials"]:
        run = reg.get_run(t["run"])  # each trial is a normal run in the registry
        assert run["status"] in ("finished", "stopped") and Path(run["run_dir"]).is_relative_to(out)
        assert t["predicted_s"] > 0 and t["measured_s"] > 0 and t["predicted_usd"] > 0
        if t["state"] == "complete":
            values.append(t["value"])
            assert t["value"] == pytest.approx(run["summary"]["best_val_loss"])
    assert d["best_value"] == min(values)
    assert d["predicted_vs_measured"]["n"] == len(values) and d["predicted_vs_measured"]["median_ratio"] > 0
    # bad input exits 2 with one line
    e = _cli("evaluate", "--run", str(tmp_path / "nothing"), "--json")
    assert e.returncode == 2 and e.stderr.strip() == f"preflight: error: --run {tmp_path / 'nothing'}: no such run folder or registered run"
    bad = _cli("sweep", "--sample", "arithmetic", "--trials", "2", "--workers", "99", "--out", str(tmp_path / "x"),
               "--json")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "cores" in bad.stderr


def test_resumed_study_gets_a_fresh_budget(tmp_path):
    inp = planted(tmp_path, trials=6, steps=25, every=5, step_s=0.02, budget_minutes=0.012, prune=False)
    first = _run_in_process(inp)
    assert "budget reached" in first.stopped_reason
    ran = len([t for t in first.trials if t["outcome"] not in tune_space.NOT_COUNTED])
    assert ran < 6
    from dataclasses import replace

    again = _run_in_process(replace(inp, budget_minutes=None))
    assert len([t for t in again.trials if t["outcome"] not in tune_space.NOT_COUNTED]) == 6


# ---- equal-time trials ---------------------------------------------------------------------------------------
def timed(tmp_path, name="t", seconds=0.2, step_s=0.002, **kw) -> SweepInput:
    space = {"fixed": {"trial_seconds": seconds, "step_s": step_s},
             "params": {"lr": {"low": 1e-5, "high": 1.0, "log": True}}}
    return SweepInput(objective="planted", space=space, out=str(tmp_path / name), **kw)


def test_equal_time_trials_get_the_steps_their_time_holds_and_are_pruned_at_shares(tmp_path):
    res = _run_in_process(timed(tmp_path, trials=8, seconds=0.2, step_s=0.002))
    assert res.trial_seconds == 0.2
    study = tune.open_study(Path(res.study_dir), json.loads((Path(res.study_dir) / "sweep.json").read_text()))
    for t in study.get_trials(deepcopy=False):
        meta = t.user_attrs["meta"]
        # 0.2 s at 2 ms a step (the planted objective has no setup): 100 steps before any trial measured
        # its speed, then the steps the speed fitted to the finished trials predicts; four evaluations
        n = meta["config"]["max_steps"]
        assert meta["config"]["eval_every"] == -(-n // 4)
        if meta["speed"] is None:
            assert n == 100
        else:
            assert 50 <= n <= 100 and meta["correction"] >= 0.95  # Python's overhead makes a step slower
        assert meta["predicted_s"] == pytest.approx(0.2, abs=meta["per_step_s"] + 1e-9)
        # reported to the pruner at per mille of the trial, so rungs compare equal shares of equal times
        assert set(t.intermediate_values) <= {250, 500, 750}
    assert res.pruned, "ASHA prunes at the first rung (250 ‰)"


def test_a_bigger_model_gets_fewer_steps_for_the_same_time():
    from engine.lab.trainer import TrainConfig
    from engine.lab.tune_predict import predict_trial, size_to_seconds

    info = {"vocab": {"char": 65}, "setup_s": 1.5, "objective": "train", "n_classes": 0}
    rate = {"flops_per_s_per_worker": 5e10}
    price = {"usd_per_worker_hour": 0.1}
    small = TrainConfig(tokenizer="char", n_layers=2, d_model=64, d_ff=176, n_heads=4, n_kv_heads=4, context=64,
                        batch_size=16, warmup_steps=500, eval_batches=4)
    big = TrainConfig(tokenizer="char", n_layers=4, d_model=128, d_ff=352, n_heads=4, n_kv_heads=4, context=64,
                      batch_size=16, warmup_steps=10, eval_batches=4)
    fitted = {"per_flop_s": 1.7 / 5e10, "per_step_s": 0.004, "setup_s": 0.8, "n": 3}
    for speed in (None, fitted):
        (s_cfg, s_n), (b_cfg, b_n) = (size_to_seconds(c, 30.0, info, rate, price, speed) for c in (small, big))
        assert s_n > 3 * b_n > 0
        for cfg, n in ((s_cfg, s_n), (b_cfg, b_n)):
            assert cfg.max_steps == n and cfg.eval_every == -(-n // 4)
            # the sized trial's prediction is the time asked for (within one step)
            pred = predict_trial(cfg, info, rate, price, speed)
            assert pred["seconds"] == pytest.approx(30.0, abs=pred["per_step_s"])
    assert s_cfg.warmup_steps == min(500, s_n) and b_cfg.warmup_steps == 10


def test_equal_time_bad_input_is_one_line(tmp_path):
    ok = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    with pytest.raises(ValidationError, match="--steps or --trial-seconds, not both"):
        prepare(timed(tmp_path, steps=50, trial_seconds=5))
    with pytest.raises(ValidationError, match="trial_seconds and max_steps"):
        prepare(SweepInput(objective="planted", out=str(tmp_path / "b"),
                           space={"fixed": {"trial_seconds": 5, "max_steps": 10}, "params": ok}))
    with pytest.raises(ValidationError, match="trial-seconds must be"):
        prepare(timed(tmp_path, seconds=None, trial_seconds=-3))
    with pytest.raises(ValidationError, match=r"--trial-seconds 2 is too short for this space: .* 8 steps take about 8 s"):
        prepare(timed(tmp_path, "short", seconds=2, step_s=1.0))
    # --trial-seconds replaces a space's step count
    study_dir, doc = prepare(SweepInput(objective="planted", out=str(tmp_path / "c"), trial_seconds=0.5,
                                        space={"fixed": {"max_steps": 10, "eval_every": 5, "step_s": 0.01},
                                               "params": ok}))
    assert doc["space"]["fixed"] == {"trial_seconds": 0.5, "step_s": 0.01} and tune.timed(doc)


def test_speed_is_fitted_from_finished_trials_with_a_per_step_overhead():
    """Trials timed at 2 ms per step plus 1 ms per MFLOP (the overhead of small models on a CPU): the fit
    recovers both, and the setup beside them; one trial keeps the probe's FLOP rate and measures the
    overhead beyond it."""
    from types import SimpleNamespace

    from engine.lab.tune_predict import fit_speed

    def trial(mflop, steps, setup):
        train = steps * (0.002 + mflop * 1e-3)
        return SimpleNamespace(user_attrs={"meta": {"step_flops": mflop * 1e6, "eval_flops": 0.0,
                                                    "config": {"eval_every": steps}},
                                           "result": {"steps": steps, "train_s": train, "measured_s": train + setup}})

    assert fit_speed([], 1e9) is None
    one = fit_speed([trial(4.0, 100, 1.0)], 2e9)  # the probe: 2 GFLOP/s, so 2 ms of a 6 ms step is FLOPs
    assert one["per_flop_s"] == 1 / 2e9 and one["per_step_s"] == pytest.approx(0.004)
    assert one["setup_s"] == pytest.approx(1.0)
    fit = fit_speed([trial(1.0, 100, 1.0), trial(4.0, 50, 1.2), trial(9.0, 30, 0.9)], 2e9)
    assert fit["per_step_s"] == pytest.approx(0.002) and fit["per_flop_s"] == pytest.approx(1e-9)
    assert fit["setup_s"] == pytest.approx(1.0) and fit["n"] == 3
