"""The readiness report, to send to a co-founder or an investor: a standalone HTML page (plotly.js
inlined once, so it opens offline; every user-supplied text escaped; print CSS so a browser's "Save as
PDF" gives clean pages), Markdown, or JSON. Input: an Assessment's ``to_dict()``."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

from engine.errors import ValidationError
from engine.money import Currency, format_money

FORMATS = ("html", "md", "json")
STATUS_COLORS = {"ready": "#16a34a", "at risk": "#d97706", "blocked": "#dc2626", "no data yet": "#6b7280"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#111827;padding:0 1rem}
h1{margin-bottom:.2rem} .muted{color:#6b7280}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem} th,td{border-bottom:1px solid #e5e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f9fafb} td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{color:#fff;border-radius:4px;padding:1px 6px;font-size:.8rem;font-weight:600;white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.6rem;margin:.8rem 0}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:.6rem .8rem} .card b{display:block;font-size:1.3rem}
.chart{margin:1rem 0}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;padding:0;font-size:11pt} .card,.chart,table,tr{break-inside:avoid;page-break-inside:avoid}
 h2{break-after:avoid;page-break-after:avoid} .modebar,.modebar-container{display:none!important} a{color:inherit;text-decoration:none}}
"""


def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _usd(value: float | None, currency: Currency | None = None) -> str:
    """A USD amount shown in ``currency`` (default USD): $1.23M, ¥8.8K, €0.0041 (engine.money's one
    formatter); no amount is a dash."""
    return "–" if value is None else format_money(value, currency)


def _months(value: float | None) -> str:
    return "unlimited (nothing is spent)" if value is None else f"{value:.1f} months"


def figures(r: dict[str, Any], currency: Currency | None = None) -> list[tuple[str, str]]:
    """The headline figures as (label, text) pairs, the same in every format; money in ``currency``."""

    gpus = r.get("serving_gpus_needed")
    out = [
        ("Training cost", _usd(r.get("training_cost_usd"), currency)),
        ("Runway after training (no revenue)", _months(r.get("runway_months_after_training"))
         if r.get("training_cost_usd") is not None else "–"),
        ("Peak load", "–" if r.get("serving_requests_per_s") is None else f"{r['serving_requests_per_s']:,.3g} requests/s"),
        ("Serving GPUs (month 1)", "–" if gpus is None else f"{gpus:,}"),
        ("Serving cost per month", _usd(r.get("serving_cost_per_month_usd"), currency)),
        ("Revenue per month", _usd(r.get("revenue_per_month_usd"), currency)),
        ("Gross margin per request", _usd(r.get("gross_margin_per_request_usd"), currency)),
        ("Break-even daily users", "never at this price" if r.get("break_even_users") is None and
         r.get("training_cost_usd") is not None else "–" if r.get("break_even_users") is None else f"{r['break_even_users']:,}"),
        ("Cash runs out", "–" if r.get("training_cost_usd") is None else
         f"not within {r.get('horizon_months') or 60} months" if r.get("cash_out_month") is None else f"month {r['cash_out_month']}"),
    ]
    comparison = r.get("serving_comparison") or {}
    for month, label in ((1, "Cheaper now (month 1)"), (12, "Cheaper at month 12")):
        row = comparison.get(f"month_{month}")
        if row:
            who = f"self-hosting {comparison['self_host_model']}" if row["cheaper"] == "self-host" else f"API {comparison['api']}"
            out.append((label, f"{who}: API {_usd(row['api_usd'], currency)} vs self-host "
                               f"{_usd(row['self_host_usd'], currency)} ({row['self_host_gpus']} GPU(s)) a month"))
    return out


QUANTILE_LABELS = {"training_cost_usd": ("Training cost", _usd),
                   "serving_cost_per_month_usd": ("Serving cost per month", _usd),
                   "runway_months_after_training": ("Runway after training (months)",
                                                    lambda v, currency=None: "–" if v is None else f"{v:.1f}"),
                   "gross_margin_per_request_usd": ("Gross margin per request", _usd)}


def _title(r: dict[str, Any]) -> str:
    company = (r.get("profile") or {}).get("company") or ""
    return f"Readiness: {company + ', ' if company else ''}scenario {r.get('scenario')}"


def _assumption_lines(r: dict[str, Any], currency: Currency | None = None) -> list[str]:
    a = r.get("assumptions") or {}
    serving = a.get("serving") or {}
    lines = [f"A month is {a.get('hours_per_month', 730):g} hours; training is paid at month 0; the horizon is "
             f"{a.get('horizon_months', 60)} months.",
             f"Servers are sized for the average load × a peak-to-average factor of {a.get('peak_to_average', 0):g} "
             "(editable).",
             "Runway after training assumes no revenue: (cash − training) ÷ (burn + first month's serving cost)."]
    if serving.get("api_cost_per_request_usd") is not None:
        lines.append(f"Serving through {serving.get('model')}: {serving.get('source')}; "
                     f"{_usd(serving['api_cost_per_request_usd'], currency)} a request, billed on the month's tokens "
                     "(no GPUs, no peak sizing); self-hosting is sized for the peak.")
    elif serving:
        lines.append(f"Serving: {serving.get('model')} on {serving.get('gpus_per_replica')} × {serving.get('gpu')} per replica, "
                     f"{serving.get('requests_per_s_per_replica', 0):.3g} requests/s per replica at full batch, "
                     f"{_usd(serving.get('price_usd_per_hour', 0), currency)} per GPU-hour; speed from the {serving.get('source')}.")
    for t in r.get("training") or []:
        lines.append(f"Training: {t['model']} ({t['method']}) on {t['tokens']:.3g} tokens, {t['gpus']} × {t['gpu']}, "
                     f"MFU {t['mfu']:.1%} ({t['mfu_basis']}), {t['gpu_hours']:,.0f} GPU-hours, {_usd(t['cost_usd'], currency)}.")
    return lines


def render_html(r: dict[str, Any], currency: Currency | None = None) -> str:
    """A standalone HTML document (plotly.js inlined once; opens offline); money in ``currency``."""
    import plotly.io as pio

    from engine.readiness.charts import cash_fan, tornado

    title = _title(r)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
             "<p class='muted'>Prepared with Preflight from the founder's own numbers and this workspace's data checks, "
             "training runs and calibrations.</p>", "<h2>Verdicts</h2><table><tr><th>area</th><th>status</th><th>why</th></tr>"]
    for a in r.get("areas") or []:
        color = STATUS_COLORS.get(a["status"], "#6b7280")
        parts.append(f"<tr><td>{_e(a['id'])}</td><td><span class='status' style='background:{color}'>{_e(a['status'])}</span></td>"
                     f"<td>{_e(a['reason'])}</td></tr>")
    parts.append("</table><h2>Key figures</h2><div class='cards'>")
    parts.extend(f"<div class='card'><span class='muted'>{_e(k)}</span><b>{_e(v)}</b></div>" for k, v in figures(r, currency))
    parts.append("</div>")
    q = r.get("quantiles") or {}
    unc = r.get("uncertainty") or {}
    if any(q.values()):
        parts.append(f"<h2>How sure: P10 / P50 / P90 over {_e(unc.get('samples'))} samples</h2>"
                     "<table><tr><th>figure</th><th>P10</th><th>P50</th><th>P90</th></tr>")
        for key, (label, fmt) in QUANTILE_LABELS.items():
            row = q.get(key)
            if row:
                parts.append(f"<tr><td>{_e(label)}</td>" + "".join(f"<td class='num'>{_e(fmt(row[p], currency))}</td>"
                                                                  for p in ("p10", "p50", "p90")) + "</tr>")
        parts.append("</table>")
        charts = []
        if unc.get("tornado"):
            charts.append(tornado(unc["tornado"], currency))
        if unc.get("fan"):
            charts.append(cash_fan(unc["fan"], unc.get("cash_out_probability"), currency))
        for i, fig in enumerate(charts):
            fig.update_layout(template="plotly_white")
            parts.append("<div class='chart'>" + pio.to_html(fig, include_plotlyjs=(i == 0), full_html=False,
                                                             div_id=f"chart-{i}", config={"displaylogo": False})
                         + "</div>")
        ranges = unc.get("ranges") or []
        if ranges:
            parts.append("<h3>Ranges (factors on the scenario's values)</h3><table><tr><th>assumption</th><th>low</th>"
                         "<th>most likely</th><th>high</th><th>source</th></tr>")
            parts.extend(f"<tr><td>{_e(x['label'])}</td><td>×{x['low']:g}</td><td>×{x['mode']:g}</td><td>×{x['high']:g}</td>"
                         f"<td class='muted'>{_e(x['source'])}</td></tr>" for x in ranges)
            parts.append("</table>")
    parts.append("<h2>Assumptions</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in _assumption_lines(r, currency)) + "</ul>")
    months = r.get("months") or []
    if months:
        parts.append("<h2>Month by month (first 24 months)</h2><table><tr><th>month</th><th>daily users</th>"
                     "<th>serving GPUs</th><th>serving cost</th><th>revenue</th><th>cash at month end</th></tr>")
        for m in months[1:25]:
            parts.append(f"<tr><td>{m['month']}</td><td class='num'>{m['users']:,.0f}</td><td class='num'>{m['serving_gpus']:,}</td>"
                         f"<td class='num'>{_e(_usd(m['serving_cost_usd'], currency))}</td>"
                         f"<td class='num'>{_e(_usd(m['revenue_usd'], currency))}</td>"
                         f"<td class='num'>{_e(_usd(m['cash_usd'], currency))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def _m(value: Any) -> str:
    """User text for Markdown: special characters escaped, HTML never live."""
    return _MD_SPECIAL.sub(r"\\\1", "" if value is None else " ".join(str(value).split()))


def _runway(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def render_markdown(r: dict[str, Any], currency: Currency | None = None) -> str:
    lines = [f"# {_m(_title(r))}", "", "## Verdicts", "", "| area | status | why |", "|---|---|---|"]
    lines += [f"| {_m(a['id'])} | **{_m(a['status'])}** | {_m(a['reason'])} |" for a in r.get("areas") or []]
    lines += ["", "## Key figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {_m(k)} | {_m(v)} |" for k, v in figures(r, currency)]
    q = r.get("quantiles") or {}
    if any(q.values()):
        samples = (r.get("uncertainty") or {}).get("samples")
        lines += ["", f"## How sure: P10 / P50 / P90 over {samples} samples", "", "| figure | P10 | P50 | P90 |",
                  "|---|---|---|---|"]
        for key, (label, fmt) in QUANTILE_LABELS.items():
            row = q.get(key)
            if row:
                lines.append(f"| {label} | " + " | ".join(_m(fmt(row[p], currency)) for p in ("p10", "p50", "p90")) + " |")
        tornado_rows = (r.get("uncertainty") or {}).get("tornado") or []
        if tornado_rows:
            lines += ["", "### What moves runway most", "", "| assumption | runway at low | runway at high |", "|---|---|---|"]
            lines += [f"| {_m(t['label'])} (×{t['low_factor']:g} to ×{t['high_factor']:g}) | "
                      f"{_runway(t['runway_low'])} | {_runway(t['runway_high'])} |" for t in tornado_rows]
    lines += ["", "## Assumptions", ""] + [f"- {_m(x)}" for x in _assumption_lines(r, currency)]
    return "\n".join(lines) + "\n"


def render(r: dict[str, Any], fmt: str, currency: Currency | None = None) -> str:
    if fmt == "html":
        return render_html(r, currency)
    if fmt == "md":
        return render_markdown(r, currency)
    if fmt == "json":
        return json.dumps(r, indent=2, allow_nan=False)
    raise ValidationError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")


def format_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = {"htm": "html", "markdown": "md"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise ValidationError(f"report file {Path(path).name!r} must end in .html, .md or .json")
    return fmt


def write_report(r: dict[str, Any], path: str | Path, currency: Currency | None = None) -> Path:
    """Write the report in the format its suffix names, atomically (a temporary file, then rename);
    HTML and Markdown show money in ``currency`` (JSON keeps the ``*_usd`` fields)."""
    out = Path(path)
    text = render(r, format_for(out), currency)
    if not out.parent.is_dir():
        raise ValidationError(f"cannot write the report: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValidationError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    return out
