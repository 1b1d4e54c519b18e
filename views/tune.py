"""Sweeps: a budget-aware hyperparameter search over the model lab (engine.lab.tune). The sweep runs in its
own process with its worker processes; this page starts and stops it, polls the study and draws it."""

import json
import tomllib
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.errors import ValidationError
from engine.lab import jobs, tune, tune_jobs, tune_space
from engine.lab.corpora import CORPORA
from engine.lab.sources import list_uploads
from engine.store import Registry
from ui.widgets import money, run_engine, stop_without_torch, watch_job

st.title("Sweeps")
stop_without_torch()
st.caption("Find a good configuration fast on the compute you can afford: Optuna's TPE search with pruning, "
           "a time or dollar budget, and every trial's predicted and measured time and cost. Each trial is a "
           "normal run on the Model lab page.")

# ---- start a sweep --------------------------------------------------------------------------------------
with st.expander("Start a sweep", expanded=not tune_jobs.list_studies()):
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Data**")
        source = st.radio("Data source", ["Built-in corpus", "Uploaded dataset"], key="tune_source")
        data = sample = None
        if source == "Built-in corpus":
            sample = st.selectbox("Corpus", list(CORPORA), key="tune_sample")
            task = CORPORA[sample].task
        else:
            uploads = list_uploads()
            if uploads:
                data = str(st.selectbox("Dataset", uploads, format_func=lambda p: p.name, key="tune_upload"))
            else:
                st.info("No uploads yet: upload one on the Model lab or Data checks page.")
            task = st.radio("Task", ["lm", "classify"], horizontal=True, key="tune_task")
    with c2:
        st.markdown("**Budget**")
        trials = st.number_input("Trials", 1, 1000, 12, key="tune_trials")
        budget_kind = st.radio("Budget", ["minutes", "dollars", "none"], horizontal=True, key="tune_budget_kind")
        budget = None
        if budget_kind != "none":
            budget = st.number_input("Budget (minutes)" if budget_kind == "minutes" else "Budget (USD)", 0.0001,
                                     1e6, 10.0 if budget_kind == "minutes" else 0.05, key=f"tune_budget_{budget_kind}",
                                     format="%.4g")
        workers = st.number_input("Worker processes", 1, tune_space.cores(), 1, key="tune_workers",
                                  help="each worker trains one trial at a time on its share of the cores")
        length = st.radio("Trial length", ["steps", "seconds"], horizontal=True, key="tune_length",
                          help="seconds: equal-time trials. Each trial trains as many steps as its configuration is "
                               "predicted to fit in that time, so trials answer 'the best model I can train in S "
                               "seconds' and a bigger model is not favoured or punished by a fixed step count")
        steps = trial_seconds = None
        if length == "steps":
            steps = st.number_input("Steps per trial", 2, 100_000, 60, key="tune_steps")
        else:
            trial_seconds = st.number_input("Seconds per trial", 5.0, 86_400.0, 30.0, step=5.0, key="tune_trial_s")
        name = st.text_input("Study name", "", key="tune_name", help="letters, digits, '.', '_', '-'")
    with c3:
        st.markdown("**Search space** (TOML)")
        default = tune_space.default_space(task, steps, trial_seconds)
        text = "\n".join(
            ["[fixed]"] + [f"{k} = {json.dumps(v)}" for k, v in default["fixed"].items()]
            + [line for p, spec in default["params"].items() for line in
               ["", f"[params.{p}]"] + [f"{k} = {json.dumps(v)}" for k, v in spec.items()]])
        space_text = st.text_area("Space", text, height=320, key=f"tune_space_{task}_{steps}_{trial_seconds}",
                                  help="[params.NAME] low/high (log = true) or choices = [...]; [fixed] values")
    if st.button("Start sweep", type="primary", key="tune_start", disabled=source != "Built-in corpus" and not data):
        try:
            space = tomllib.loads(space_text)
        except tomllib.TOMLDecodeError as exc:
            st.error(f"the search space is not valid TOML: {exc}")
            st.stop()
        study = name.strip() or f"{sample or 'data'}-{task}"
        out = tune.study_dir_for(run_engine(tune_space.check_study_name, study))
        inp = tune_space.SweepInput(data=data, sample=sample, task=task, trials=int(trials), workers=int(workers),
                              budget_minutes=budget if budget_kind == "minutes" else None,
                              budget_usd=budget if budget_kind == "dollars" else None, space=space, name=study,
                              out=str(out))
        started = run_engine(tune_jobs.start_sweep, inp)
        st.session_state["tune_study"] = started["study_dir"]
        st.toast(f"Sweep {started['study']} started in its own process.")
        st.rerun()

# ---- the selected study, live ---------------------------------------------------------------------------------
studies = tune_jobs.list_studies()
if not studies:
    st.info("No sweeps yet. Start one above: 12 trials on the arithmetic corpus take a few minutes on 2 cores.")
    st.stop()
names = [str(p) for p in studies]
current = st.session_state.get("tune_study")
chosen = st.selectbox("Study", names, index=names.index(current) if current in names else 0,
                      format_func=lambda p: p.rsplit("/", 1)[-1], key="tune_pick")
st.session_state["tune_study"] = chosen


def _table(res: dict) -> pd.DataFrame:
    rows = []
    for t in res["trials"]:
        rows.append({"trial": t["number"], "outcome": t["outcome"], "value": t["value"], "steps": t["steps"],
                     **{f"param {k}": v for k, v in t["params"].items()},
                     "predicted s": t["predicted_s"], "measured s": t["measured_s"],
                     "predicted $": t["predicted_usd"], "measured $": t["measured_usd"], "run": t["run"],
                     "error": t["error"]})
    return pd.DataFrame(rows)


def _charts(study_dir: str, res: dict) -> None:
    import optuna.visualization as vis

    complete = [t for t in res["trials"] if t["state"] == "complete"]
    if not complete:
        st.caption("Charts appear when the first trial completes.")
        return
    study = tune_jobs.load_study(study_dir)
    t1, t2, t3 = st.tabs(["Optimization history", "Parallel coordinates", "Parameter importance"])
    with t1:
        st.plotly_chart(vis.plot_optimization_history(study), width="stretch", key="tune_hist")
    with t2:
        st.plotly_chart(vis.plot_parallel_coordinate(study), width="stretch", key="tune_par")
    with t3:
        if len(complete) >= 3:
            try:
                st.plotly_chart(vis.plot_param_importances(study), width="stretch", key="tune_imp")
            except (ValueError, RuntimeError) as exc:
                st.caption(f"Importance not available yet: {exc}")
        else:
            st.caption("Parameter importance (fANOVA) needs at least 3 complete trials.")


def _study_view(study_dir: str) -> None:
    try:
        res = tune.summary(study_dir).to_dict()
    except ValidationError as exc:
        if tune_jobs.sweep_alive(study_dir):
            st.subheader(f"{Path(study_dir).name}: preparing")
            st.caption("Reading the data and measuring this machine's throughput for the predictions…")
        else:
            st.error(tune_jobs.sweep_error(study_dir) or str(exc))
        return
    alive = tune_jobs.sweep_alive(study_dir)
    n = json.loads((Path(study_dir) / "sweep.json").read_text())["input"]["trials"]
    finished = [t for t in res["trials"] if t["state"] != "running" and t["outcome"] not in tune_space.NOT_COUNTED]
    state = "running" if alive else (res["stopped_reason"] or "not running")
    st.subheader(f"{res['study']}: {state}")
    st.progress(min(1.0, len(finished) / max(1, n)), text=f"{len(finished)} of {n} trials")
    m = st.columns(5)
    m[0].metric("Best value", f"{res['best_value']:.4f}" if res["best_value"] is not None else "–",
                help="lowest validation loss of a complete trial")
    m[1].metric("Pruned", len(res["pruned"]))
    m[2].metric("Time spent", f"{res['spent_s'] / 60:.1f} min")
    m[3].metric("Cost", money(res["spent_usd"]))
    ratio = res["predicted_vs_measured"]["median_ratio"]
    m[4].metric("Measured ÷ predicted", f"{ratio:.2f}" if ratio else "–", help=res["predicted_vs_measured"]["basis"])
    if res.get("trial_seconds"):
        st.caption(f"Equal-time trials: each trains the steps its configuration is predicted to fit in "
                   f"{res['trial_seconds']:g} s (the steps column), pruned at a quarter and three quarters of it.")
    if res["best_params"]:
        st.caption("Best configuration: " + ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                                                      for k, v in res["best_params"].items()))
    table = _table(res)
    if not table.empty:
        st.dataframe(table, hide_index=True, width="stretch")
    _charts(study_dir, res)
    st.session_state["tune_result"] = res


if tune_jobs.sweep_alive(chosen):
    watch_job(tune_jobs.sweep_status, chosen, "tune_live", lambda _: _study_view(chosen), every=2.0)
    if st.button("Stop the sweep", key="tune_stop", help="running trials end at their next evaluation"):
        run_engine(tune_jobs.stop_sweep, chosen)
        st.toast("Stop requested: trials end at their next evaluation.")
else:
    _study_view(chosen)
    res = st.session_state.get("tune_result")
    b1, b2, b3 = st.columns(3)
    if b1.button("Resume the sweep", key="tune_resume", help="runs the remaining trials (same space and data)"):
        started = run_engine(tune_jobs.start_sweep, run_engine(tune_jobs.study_input, chosen))
        st.toast(f"Sweep {started['study']} resumed.")
        st.rerun()
    if res and res.get("best_params"):
        timed_study = res.get("trial_seconds")
        unit = b2.radio("Full run length", ["steps", "minutes"], index=1 if timed_study else 0, horizontal=True,
                        key="tune_full_unit", help="minutes: as many steps as that time holds at the best trial's "
                                                   "measured time per step")
        if unit == "steps":
            length_kw = {"max_steps": int(b2.number_input("Steps for the full run", 1, 1_000_000, 600,
                                                          key="tune_full_steps"))}
        else:
            minutes = b2.number_input("Minutes for the full run", 0.1, 100_000.0,
                                      max(1.0, round(4 * (timed_study or 60) / 60, 1)), key="tune_full_minutes")
            length_kw = {"seconds": float(minutes) * 60}
        if b2.button("Train the best configuration fully", key="tune_best", type="primary"):
            cfg = run_engine(tune_jobs.best_config, chosen, **length_kw)
            run = run_engine(jobs.start_training, cfg, f"{res['study']}-best", registry=Registry())
            st.session_state["lab_run"] = run
            st.success(f"Started run {run}: follow it on the Model lab page.")
    if res:
        b3.download_button("Trials (CSV)", _table(res).to_csv(index=False), file_name=f"{res['study']}-trials.csv",
                           mime="text/csv", on_click="ignore", key="tune_dl_csv")
        b3.download_button("Study (JSON)", json.dumps(res, indent=1), file_name=f"{res['study']}.json",
                           mime="application/json", on_click="ignore", key="tune_dl_json")
