"""The data-check report as one standalone HTML page: score, weights, findings with examples, charts.

Works offline: plotly.js is inlined once (no CDN). Every value from the data is HTML-escaped, so a
``<script>`` in a cell is shown, never run.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from engine.charts import SEVERITY_COLORS as _COLORS  # one palette for the page and the report

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#111827;padding:0 1rem}
h1{margin-bottom:.2rem} .muted{color:#6b7280} .score{font-size:3rem;font-weight:700}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem} th,td{border-bottom:1px solid #e5e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f9fafb} .sev{color:#fff;border-radius:4px;padding:1px 6px;font-size:.8rem;font-weight:600}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:.8rem 1rem;margin:.8rem 0}
.card h3{margin:.2rem 0 .4rem;font-size:1.05rem} code{background:#f3f4f6;padding:0 3px;border-radius:3px}
.ex td{font-family:ui-monospace,monospace;font-size:.8rem;white-space:pre-wrap;word-break:break-word}
"""


def _e(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value, ensure_ascii=False, default=str)[:500])
    return html.escape(str(value))


def _sev(s: str) -> str:
    return f'<span class="sev" style="background:{_COLORS.get(s, "#6b7280")}">{_e(s)}</span>'


def _charts(report: dict[str, Any]) -> list[str]:
    """The page's distribution charts (engine.charts.data_check_figures), as HTML fragments with
    plotly.js inlined once, so the report works offline."""
    import plotly.io as pio

    from engine.charts import data_check_figures

    out = []
    for i, fig in enumerate(data_check_figures(report)):
        fig.update_layout(template="plotly_white")
        out.append(pio.to_html(fig, include_plotlyjs=(i == 0), full_html=False, div_id=f"chart-{i}",
                               config={"displaylogo": False}))
    return out


def render_html(report: Any, currency: Any = None) -> str:
    """The report (a CheckReport or its to_dict()) as a standalone HTML document; money (the
    estimator link) in ``currency`` (an ``engine.money.Currency``, default USD)."""
    r = report.to_dict() if hasattr(report, "to_dict") else report
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Preflight data check: {_e(r.get('file'))}</title>",
             f"<style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>Data check: {_e(r.get('file'))}</h1>")
    meta = f"{r.get('rows', 0):,} rows × {r.get('columns', 0)} columns, format {_e(r.get('format'))}"
    if r.get("test_file"):
        meta += f"; test split {_e(r.get('test_file'))} ({r.get('test_rows') or 0:,} rows)"
    meta += f"; text column: {_e(r.get('text_col') or 'none')}, label column: {_e(r.get('label_col') or 'none')}"
    parts.append(f"<p class='muted'>{meta}</p>")
    parts.append(f"<div class='score'>{int(r.get('score', 0))}<span class='muted' style='font-size:1.2rem'>/100 readiness</span></div>")
    tokens = r.get("tokens")
    if tokens:
        total = tokens.get("total") or 0
        parts.append(f"<p><b>Tokens:</b> {total:,} ({_e(tokens.get('tokenizer'))})</p>")
    if r.get("estimate"):
        sentence = r["estimate"].get("sentence")
        if currency is not None:
            from engine.datacheck.runner import estimate_sentence

            sentence = estimate_sentence(r["estimate"], currency)
        parts.append(f"<p>{_e(sentence)}</p>")
        if r["estimate"].get("finetune"):
            from engine.estimate.finetune_link import finetune_sentence

            parts.append(f"<p>{_e(finetune_sentence(r['estimate']['finetune'], currency))}</p>")

    findings = r.get("findings") or []
    parts.append(f"<h2>Findings ({len(findings)})</h2>")
    if findings:
        parts.append("<table><tr><th>severity</th><th>check</th><th>column</th><th>split</th><th>count</th><th>finding</th><th>fix</th></tr>")
        for f in findings:
            parts.append(f"<tr><td>{_sev(f['severity'])}</td><td><code>{_e(f['id'])}</code></td><td>{_e(f.get('column'))}</td>"
                         f"<td>{_e(f.get('split'))}</td><td>{f.get('count', 0):,}</td><td>{_e(f.get('title'))}</td><td>{_e(f.get('fix'))}</td></tr>")
        parts.append("</table>")
        for f in findings:
            parts.append(f"<div class='card'><h3>{_sev(f['severity'])} <code>{_e(f['id'])}</code> {_e(f.get('title'))}</h3>")
            parts.append(f"<p><b>Fix:</b> {_e(f.get('fix'))}</p>")
            rows = f.get("rows") or []
            if rows:
                more = f" … ({f.get('rows_total', len(rows)):,} in all)" if f.get("rows_total", 0) > 20 else ""
                parts.append(f"<p class='muted'>Rows (0-based): {_e(', '.join(str(x) for x in rows[:20]))}{more}</p>")
            examples = f.get("examples") or []
            if examples:
                keys = list(dict.fromkeys(k for ex in examples for k in ex))
                parts.append("<table class='ex'><tr>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>")
                for ex in examples:
                    parts.append("<tr>" + "".join(f"<td>{_e(ex.get(k))}</td>" for k in keys) + "</tr>")
                parts.append("</table>")
            parts.append("</div>")
    else:
        parts.append("<p>No problems found.</p>")

    charts = _charts(r)
    if charts:
        parts.append("<h2>Charts</h2>")
        parts.extend(f"<div>{c}</div>" for c in charts)

    w = r.get("weights") or {}
    parts.append("<h2>How the score is computed</h2>")
    parts.append(f"<p>{_e(w.get('formula'))}</p>")
    sev = w.get("severity") or {}
    parts.append("<table><tr><th>severity</th><th>weight</th></tr>"
                 + "".join(f"<tr><td>{_sev(k)}</td><td>{_e(v)}</td></tr>" for k, v in sev.items()) + "</table>")
    pen = r.get("penalties") or []
    if pen:
        parts.append("<table><tr><th>check</th><th>column</th><th>split</th><th>severity</th><th>points lost</th></tr>"
                     + "".join(f"<tr><td><code>{_e(p['id'])}</code></td><td>{_e(p.get('column'))}</td><td>{_e(p.get('split'))}</td>"
                               f"<td>{_sev(p['severity'])}</td><td>{_e(p['penalty'])}</td></tr>" for p in pen) + "</table>")
    parts.append("<h2>Checks</h2><table><tr><th>check</th><th>what it looks for</th><th>status</th><th>note</th></tr>")
    for c in r.get("checks_run") or []:
        parts.append(f"<tr><td><code>{_e(c['id'])}</code></td><td>{_e(c.get('title'))}</td><td>{_e(c.get('status'))}</td>"
                     f"<td>{_e(c.get('reason'))}</td></tr>")
    parts.append("</table>")
    if r.get("fix"):
        fx = r["fix"]
        parts.append(f"<h2>Cleaned file</h2><p>{_e(fx.get('path'))}: {fx.get('rows_out', 0):,} of {fx.get('rows_in', 0):,} rows kept.</p><ul>"
                     + "".join(f"<li>{_e(a['count'])} {_e(a['what'])}</li>" for a in fx.get("actions", [])) + "</ul>")
    parts.append(f"<p class='muted'>Checked in {_e(r.get('elapsed_s'))} s by Preflight.</p></body></html>")
    return "\n".join(parts)


def write_html(report: Any, path: str | Path, currency: Any = None) -> Path:
    """Write the standalone report to ``path`` (via a temporary file) and return it."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(render_html(report, currency), encoding="utf-8")
    tmp.replace(out)
    return out
