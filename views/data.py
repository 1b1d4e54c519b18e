"""Data checks: upload a dataset (or pick a built-in sample), get findings with row evidence, a
readiness score, charts, an HTML/JSON report and a cleaned file. The checks run in their own process
(engine.datacheck.job); this page starts the job and polls it."""

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from engine import workspace
from engine.charts import data_check_figures, readiness_gauge
from engine.datacheck import job
from engine.datacheck.report_html import render_html
from engine.datacheck.runner import estimate_sentence
from engine.datacheck.samples import SAMPLES, write_sample
from engine.tabular import sheet_names
from engine.tabular.formats import UPLOAD_TYPES
from ui.currency import current_currency, money_result
from ui.access import demo_notice
from ui.navigation import PAGES, link
from ui.widgets import run_engine, watch_job

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
RUN_ON = ["this process", "a local Dask cluster", "a scheduler address"]
DASHBOARD = re.compile(r"dashboard: (https?://[^\s)]+)")
INLINE_BYTES = 1_000_000  # smaller files are checked in this process (well under a second)
SEVERITY_ICONS = {"critical": ":material/dangerous:", "high": ":material/error:", "medium": ":material/warning:",
                  "low": ":material/info:", "info": ":material/check_circle:"}

st.title("Data checks")
st.caption("Is this dataset ready to train on? Duplicates, near-duplicates, PII, leakage, label problems, "
           "drift and more: each finding with its rows, masked examples and a fix.")
if demo_notice("uploads and new data checks (they write to the shared workspace)"):
    st.stop()


@st.cache_data(show_spinner=False)
def _sample_dir() -> str:
    return tempfile.mkdtemp(prefix="preflight-samples-")


@st.cache_data(show_spinner=False)  # written once: a rewrite each rerun changes the mtime, so a new job
def _sample_paths(name: str) -> tuple[str, str | None]:
    directory = _sample_dir()
    info = SAMPLES[name]
    train = write_sample(name, directory)
    test = write_sample(info["test"], directory) if info.get("test") else None
    return str(train), (str(test) if test else None)


# ---- input -------------------------------------------------------------------------------------------
source = st.radio("Dataset", ["Built-in sample", "Upload a file", "Uploaded earlier"], horizontal=True,
                  key="dc_source")
train_path = test_path = None
if source == "Built-in sample":
    names = [n for n in SAMPLES if not n.endswith("_test")]
    name = st.selectbox("Sample", names, key="dc_sample",
                        format_func=lambda n: n.replace("_", " ") + (" (with a test split)" if SAMPLES[n].get("test") else ""))
    st.caption(SAMPLES[name]["description"])
    train_path, test_path = _sample_paths(name)
elif source == "Upload a file":
    c1, c2 = st.columns(2)
    up = c1.file_uploader("Training file", type=UPLOAD_TYPES, key="dc_upload",
                          help="CSV, TSV, JSONL/JSON, Parquet, plain text or an Excel workbook, gzip-compressed "
                               "too; non-UTF-8 text (cp1252, latin-1...) is detected and reported")
    up_test = c2.file_uploader("Test / validation split (optional)", type=UPLOAD_TYPES, key="dc_upload_test")
    if up is not None:
        train_path = str(run_engine(workspace.save_upload, up.name, up.getvalue()))
    if up_test is not None:
        test_path = str(run_engine(workspace.save_upload, up_test.name, up_test.getvalue()))
else:
    uploads = workspace.list_uploads()
    if not uploads:
        st.info("Nothing uploaded yet: upload a file, or start with a built-in sample.")
    else:
        c1, c2 = st.columns(2)
        chosen = c1.selectbox("Training file", uploads, format_func=lambda p: p.name, key="dc_previous")
        chosen_test = c2.selectbox("Test / validation split (optional)", [None, *uploads],
                                   format_func=lambda p: "none" if p is None else p.name, key="dc_previous_test")
        train_path = str(chosen)
        test_path = str(chosen_test) if chosen_test is not None else None

with st.expander("Options"):
    o1, o2, o3 = st.columns(3)
    text_col = o1.text_input("Text column", "", key="dc_text", help="blank: inferred (the longest free-text column)")
    label_col = o2.text_input("Label column", "", key="dc_label", help="blank: inferred (label, target, class...)")
    threshold = o3.slider("Near-duplicate Jaccard threshold", 0.5, 1.0, 0.8, 0.05, key="dc_threshold",
                          help="MinHash LSH on character 5-grams; pairs at or above this similarity are near-duplicates")

r1, r2 = st.columns([2, 1])
run_on = r1.radio("Run on", RUN_ON, horizontal=True, key="dc_run_on",
                  help="this process: the file is read here; a local Dask cluster: worker processes on this machine "
                       "(shards checked in parallel); a scheduler address: a Dask cluster you started "
                       "(docs/DISTRIBUTED.md)")
engine_fields = {"engine": "local", "workers": 2, "scheduler": None}
if run_on == RUN_ON[1]:
    engine_fields.update(engine="dask", workers=int(r2.number_input("Workers", 1, 64, 2, key="dc_workers")))
elif run_on == RUN_ON[2]:
    engine_fields.update(engine="dask", scheduler=r2.text_input("Scheduler", "", key="dc_scheduler",
                                                                placeholder="tcp://HOST:8786").strip() or None)
    if engine_fields["scheduler"] is None:
        st.info("Give the scheduler's address (tcp://HOST:PORT), or run on this process.")
        st.stop()

if train_path is None:
    st.stop()

sheet = None
if Path(train_path).suffix.lower() in WORKBOOK_SUFFIXES:
    sheets = run_engine(sheet_names, train_path)
    sheet = st.selectbox("Sheet", sheets, key="dc_sheet", help="the workbook's sheet to check (default: the first)")

# The browser uploader enforces server.maxUploadSize; the engine enforces it again for every path
# (files picked from earlier uploads included).
max_bytes = int(st.get_option("server.maxUploadSize")) * 1024 * 1024
fields = {"path": train_path, "test_path": test_path, "text_col": text_col.strip() or None,
          "label_col": label_col.strip() or None, "near_dup_threshold": float(threshold), "max_bytes": max_bytes,
          "sheet": sheet, **engine_fields}
fingerprint = json.dumps({**fields, "mtime": [Path(p).stat().st_mtime_ns for p in (train_path, test_path) if p]},
                         sort_keys=True)
if st.session_state.get("dc_fingerprint") != fingerprint:
    size = sum(Path(p).stat().st_size for p in (train_path, test_path) if p)
    if st.session_state.get("dc_job"):
        job.cancel(st.session_state["dc_job"])
    inline = size < INLINE_BYTES and engine_fields["engine"] == "local"  # a cluster takes seconds to start
    st.session_state["dc_job"] = run_engine(job.start_check, fields, inline=inline)
    st.session_state["dc_fingerprint"] = fingerprint


def _progress(s: dict) -> None:
    """A running check: its bar, and the Dask dashboard's link when the cluster has one."""
    st.progress(min(1.0, s["fraction"]), text=f"Checking: {s['message']}")
    dashboard = DASHBOARD.search(s["message"] or "")
    if dashboard:
        st.markdown(f"[Dask dashboard]({dashboard.group(1)}): the tasks as they run")


status = job.poll(st.session_state["dc_job"])
if status.state == "running":  # the whole page draws the result once the job ends
    watch_job(lambda j: job.poll(j).to_dict(), status.job_id, "dc_watch", _progress, every=0.5)
    st.stop()
if status.state == "failed":
    st.error(status.error)
    st.stop()

# ---- the report --------------------------------------------------------------------------------------
report = status.report
findings = report["findings"]
problems = [f for f in findings if f["severity"] != "info"]
g1, g2 = st.columns([1, 2])
with g1:
    st.plotly_chart(readiness_gauge(report["score"]), width="stretch", config={"displayModeBar": False})
with g2:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Readiness", f"{report['score']} / 100")
    m2.metric("Rows", f"{report['rows']:,}",
              help=f"plus {report['test_rows']:,} rows in the test split" if report.get("test_rows") else None)
    m3.metric("Columns", report["columns"])
    tokens = report.get("tokens") or {}
    m4.metric("Tokens", f"{tokens['total']:,}" if tokens.get("total") else "n/a",
              help=tokens.get("tokenizer") or "no text column")
    test = f" + {report['test_file']} ({report['test_rows']:,} test rows)" if report.get("test_file") else ""
    read_as = (f", sheet {report['sheet']!r}" if report.get("sheet") else "") + (
        f", {report['encoding']}" if report.get("encoding", "UTF-8") != "UTF-8" else "")
    st.caption(f"{report['file']} ({report['format']}{read_as}){test}; text column: {report.get('text_col') or 'none'}; "
               f"label column: {report.get('label_col') or 'none'}; "
               + (f"id columns (no outlier, drift or constant check): {', '.join(report['id_columns'])}; "
                  if report.get("id_columns") else "")
               + f"checked in {report['elapsed_s']:.2f} s. "
               f"{len(problems)} problem(s) found.")
    ran = report.get("engine") or {}
    if ran.get("name") == "dask":
        st.caption(f"Ran on Dask: {ran.get('workers')} workers, {ran.get('partitions')} partitions, scheduler "
                   f"{ran.get('scheduler')}" + (" (a local cluster, stopped afterwards)" if ran.get("local_cluster") else "")
                   + (f"; [dashboard]({ran['dashboard']})" if ran.get("dashboard") and not ran.get("local_cluster") else ""))
    estimate = report.get("estimate")
    if estimate:
        st.info(estimate_sentence(estimate, current_currency()))
        link(next(p for p in PAGES if p.url_path == "train"))
        from ui.finetune import finetune_figure  # beside the compute-optimal figure: fine-tuning an open model

        finetune_figure(estimate["tokens"])

st.subheader("Findings")
if not findings:
    st.success("No findings: nothing in this file needs fixing before training.")
for i, f in enumerate(findings):
    where = f" · column `{f['column']}`" if f.get("column") else ""
    split = " · test split" if f.get("split") == "test" else ""
    with st.expander(f"**{f['severity'].upper()}** · {f['title']}{where}{split}", icon=SEVERITY_ICONS[f["severity"]],
                     expanded=i < 3 and f["severity"] in ("critical", "high")):
        st.markdown(f"`{f['id']}` · count **{f['count']:,}** · rows involved {f['rows_total']:,}")
        st.markdown(f"**Fix:** {f['fix']}" + (f" (automatic: `{f['safe_fix']}` in the cleaned file)" if f.get("safe_fix") else ""))
        if f["rows"]:
            shown = ", ".join(str(r) for r in f["rows"][:30])
            more = f" … and {f['rows_total'] - 30:,} more" if f["rows_total"] > 30 else ""
            st.caption(f"Rows (0-based data rows): {shown}{more}")
        if f["examples"]:
            st.dataframe(pd.DataFrame(f["examples"]).astype(str), hide_index=True, width="stretch")
        if f.get("details"):
            with st.popover("Details"):
                st.json(f["details"])

figs = data_check_figures(report)
if figs:
    st.subheader("Distributions")
    cols = st.columns(min(2, len(figs)))
    for i, fig in enumerate(figs):
        cols[i % len(cols)].plotly_chart(fig, width="stretch")

with st.expander("Checks run and the score's weights"):
    st.dataframe(pd.DataFrame(report["checks_run"]), hide_index=True, width="stretch")
    st.caption(report["weights"]["formula"])
    if report.get("penalties"):
        st.dataframe(pd.DataFrame(report["penalties"]), hide_index=True, width="stretch")

st.subheader("Downloads")
d1, d2, d3, d4 = st.columns(4)
stem = Path(report["file"]).name.split(".")[0] or "dataset"
d1.download_button("Report (JSON)", json.dumps(money_result(report), indent=2), file_name=f"{stem}-report.json",
                   mime="application/json", on_click="ignore", key="dc_dl_json")
html_path = job.artifact(status.job_id, "report.html")
if html_path:
    # the stored report is in USD; another currency re-renders it (its estimator sentence) from the JSON
    cur = current_currency()
    page = html_path.read_bytes() if cur.code == "USD" else render_html(report, cur).encode("utf-8")
    d2.download_button("Report (HTML)", page, file_name=f"{stem}-report.html", mime="text/html",
                       on_click="ignore", key="dc_dl_html")
findings_csv = pd.DataFrame([{k: (v if not isinstance(v, (list, dict)) else json.dumps(v)) for k, v in f.items()}
                             for f in findings]).to_csv(index=False)
d3.download_button("Findings (CSV)", findings_csv, file_name=f"{stem}-findings.csv", mime="text/csv",
                   on_click="ignore", key="dc_dl_csv")
fix = report.get("fix") or {}
cleaned = Path(fix["path"]) if fix.get("path") else None
if cleaned is not None and cleaned.is_file():
    d4.download_button(f"Cleaned file ({fix.get('rows_out', '?'):,} rows)", cleaned.read_bytes(),
                       file_name=f"{stem}-cleaned{''.join(cleaned.suffixes)}", on_click="ignore", key="dc_dl_clean",
                       help="; ".join(f"{a.get('id')}: {a.get('count')}" for a in fix.get("actions", [])) or None)
else:
    d4.caption("No safe automatic fix applies: the cleaned file would equal the input.")
