"""The evaluation report of a finished run, drawn: confusion-matrix heatmap, reliability diagram, per-class
table, confident mistakes and k-fold spread for classifiers; perplexity by position, bits per byte and
samples for language models. The numbers come from engine.lab.evaluate (scikit-learn's metrics)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.lab import evaluate as ev
from ui.widgets import run_engine, watch_job

TERMINAL = ("finished", "stopped", "failed", "diverged")


def confusion_figure(report: dict) -> go.Figure:
    cm = report["confusion_matrix"]
    fig = go.Figure(go.Heatmap(z=cm["matrix"], x=cm["labels"], y=cm["labels"], colorscale="Blues",
                               text=cm["matrix"], texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=360,
                      margin=dict(l=10, r=10, t=30, b=10), title="Confusion matrix")
    return fig


def reliability_figure(report: dict) -> go.Figure:
    bins = report["reliability"]["bins"]
    fig = go.Figure()
    fig.add_bar(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], width=0.08, name="accuracy",
                customdata=[b["count"] for b in bins], hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} "
                                                                     "(%{customdata} examples)<extra></extra>")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(dash="dash"))
    fig.update_layout(xaxis_title="confidence (top class)", yaxis_title="accuracy", xaxis_range=[0, 1],
                      yaxis_range=[0, 1], height=360, margin=dict(l=10, r=10, t=30, b=10),
                      title=f"Reliability diagram (ECE {report['ece']:.3f})", legend=dict(orientation="h", y=-0.25))
    return fig


def position_figure(report: dict) -> go.Figure:
    rows = report["by_position"]
    fig = go.Figure(go.Bar(x=[f"{r['start']}–{r['end'] - 1}" for r in rows], y=[r["loss"] for r in rows]))
    fig.update_layout(xaxis_title="position in the context window", yaxis_title="loss (nats/token)", height=320,
                      margin=dict(l=10, r=10, t=30, b=10), title="Loss by position")
    return fig


def render_report(report: dict, key: str) -> None:
    """Draw an evaluation report (the dict of ``preflight evaluate --json``)."""
    st.caption(f"{report['task']} · checkpoint at step {report['step']} · {report['source']} · "
               f"{report['n_examples']:,} {'examples' if report['task'] == 'classify' else 'tokens'}")
    if report["task"] == "classify":
        m = st.columns(4)
        m[0].metric("Accuracy", f"{report['accuracy']:.1%}")
        m[1].metric("Macro-F1", f"{report['macro_f1']:.3f}")
        m[2].metric("Weighted-F1", f"{report['weighted_f1']:.3f}")
        m[3].metric("ECE", f"{report['ece']:.3f}", help="expected calibration error (Guo et al. 2017)")
        c1, c2 = st.columns(2)
        c1.plotly_chart(confusion_figure(report), width="stretch", key=f"{key}_cm")
        c2.plotly_chart(reliability_figure(report), width="stretch", key=f"{key}_rel")
        per = pd.DataFrame([{"label": k, **v} for k, v in report["per_class"].items()])
        avg = pd.DataFrame([{"label": f"{name} avg", **report[name], "support": int(per["support"].sum())}
                            for name in ("macro", "weighted")])
        st.dataframe(pd.concat([per, avg], ignore_index=True), hide_index=True, width="stretch")
        if report.get("cv"):
            cv = report["cv"]
            st.markdown(f"**{cv['k']}-fold cross-validation:** macro-F1 {cv['mean']:.3f} ± {cv['std']:.3f}")
            st.caption(cv["basis"])
            st.dataframe(pd.DataFrame([{k: v for k, v in f.items() if k != "test_label_counts"} for f in cv["folds"]]),
                         hide_index=True, width="stretch")
        if report.get("confident_mistakes"):
            st.markdown("**Most confident mistakes**")
            st.dataframe(pd.DataFrame(report["confident_mistakes"]), hide_index=True, width="stretch")
    else:
        m = st.columns(3)
        m[0].metric("Validation loss", f"{report['val_loss']:.3f}")
        m[1].metric("Perplexity", f"{report['perplexity']:.2f}")
        m[2].metric("Bits per byte", f"{report['bits_per_byte']:.3f}" if report.get("bits_per_byte") else "–",
                    help="tokenizer-independent: byte, char and BPE runs compare")
        st.plotly_chart(position_figure(report), width="stretch", key=f"{key}_pos")
        for s in report.get("samples", []):
            st.caption(f"sample, seed {s['seed']}")
            st.code(s["text"], language=None, wrap_lines=True)
    st.caption(report.get("basis") or report.get("reliability", {}).get("basis", ""))


def evaluation_section(run: dict, key: str = "eval") -> None:
    """The evaluation block for a registry run row: start an evaluation (own process), poll, draw."""
    run_dir = run["run_dir"]
    with st.expander("Evaluation report", expanded=ev.read_report(run_dir) is not None):
        is_cls = bool(((run.get("config") or {}).get("model") or {}).get("n_classes"))
        c1, c2 = st.columns([1, 3])
        folds = c1.number_input("k-fold (0: none)", 0, 20, 0, key=f"{key}_folds_{run['name']}",
                                help="stratified k-fold macro-F1; each fold trains a fresh model for a few steps",
                                disabled=not is_cls)
        watch = f"{key}_watch_{run['name']}"
        if c2.button("Evaluate this run", key=f"{key}_start_{run['name']}", disabled=run["status"] not in TERMINAL):
            st.session_state[f"{watch}_job"] = run_engine(ev.start_evaluation, run_dir, int(folds))
            st.session_state.pop(f"{watch}_done", None)
        if st.session_state.get(f"{watch}_job"):
            watch_job(ev.evaluation_status, st.session_state[f"{watch}_job"], watch,
                      lambda _: st.caption("Evaluating in its own process…"))
            return
        done = st.session_state.get(f"{watch}_done")
        if done and done["status"] == "failed":
            st.error(done["error"])
        report = ev.read_report(run_dir)
        if report is not None:
            render_report(report, f"{key}_{run['name']}")
