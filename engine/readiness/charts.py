"""Readiness charts (plotly), shared by the page and the HTML report: the tornado of what moves runway and
margin most, and the fan of cash over time.

Each figure is built as one plain figure dict and validated once by ``go.Figure(spec)``: a few
milliseconds, where ``make_subplots`` and ``add_vline`` took about 0.2 s per rerun of the page.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from engine.money import Currency, get_currency

LOW, HIGH = "#dc2626", "#2563eb"
_LAYOUT = dict(margin=dict(l=10, r=10, t=70, b=10), legend=dict(orientation="h", y=-0.15))


def tornado(rows: list[dict[str, Any]], currency: Currency | None = None) -> go.Figure:
    """Runway (months) and margin per request (in ``currency``, default USD) at each assumption's low and
    high factor, one bar pair per assumption, biggest runway swing on top, drawn around the point value."""
    cur = currency or get_currency()
    order = list(reversed(rows))  # plotly draws the first category at the bottom
    labels = [r["label"] for r in order]
    data, shapes, titles = [], [], []
    for axis, metric, title, domain in (("", "runway", "Runway after training (months)", [0.0, 0.47]),
                                        ("2", "margin", f"Gross margin per request ({cur.code})", [0.53, 1.0])):
        scale = cur.from_usd(1.0) if metric == "margin" else 1.0
        base = ((order[0][f"{metric}_base"] if order else None) or 0.0) * scale
        for end, color in (("low", LOW), ("high", HIGH)):
            values = [(r[f"{metric}_{end}"] * scale if r[f"{metric}_{end}"] is not None else base) - base for r in order]
            data.append(dict(type="bar", orientation="h", y=labels, x=values, base=base, marker=dict(color=color),
                             name=f"assumption at its {end} end", showlegend=axis == "", legendgroup=end,
                             customdata=[r[f"{end}_factor"] for r in order], xaxis=f"x{axis}", yaxis=f"y{axis}",
                             hovertemplate="%{y}<br>×%{customdata:g}: %{x:+.4g} from the point value<extra></extra>"))
        shapes.append(dict(type="line", xref=f"x{axis}", yref="paper", x0=base, x1=base, y0=0, y1=1,
                           line=dict(color="#111827", width=1)))
        titles.append(dict(domain=domain, title=dict(text=title, font=dict(size=12))))
    layout = dict(
        title=dict(text="What moves runway and margin most (one assumption at a time)"), barmode="overlay",
        height=160 + 42 * len(rows), shapes=shapes, xaxis=titles[0], xaxis2=titles[1],
        yaxis=dict(automargin=True), yaxis2=dict(anchor="x2", matches="y", showticklabels=False), **_LAYOUT)
    return go.Figure(dict(data=data, layout=layout))


def cash_fan(fan: dict[str, list[float]], cash_out_probability: float | None = None,
             currency: Currency | None = None) -> go.Figure:
    """Cash at the end of each month (in ``currency``, default USD): the P10-P90 band and the median over
    the Monte Carlo samples."""
    cur = currency or get_currency()
    months = fan["month"]
    p10, p50, p90 = ([cur.from_usd(v) for v in fan[k]] for k in ("p10", "p50", "p90"))
    title = "Cash over time"
    if cash_out_probability is not None:
        title += f" (runs out within {months[-1]} months in {cash_out_probability:.0%} of samples)"
    data = [
        dict(type="scatter", x=months, y=p90, mode="lines", line=dict(width=0, color=HIGH), showlegend=False,
             hoverinfo="skip"),
        dict(type="scatter", x=months, y=p10, mode="lines", line=dict(width=0, color=HIGH), fill="tonexty",
             fillcolor="rgba(37,99,235,0.18)", name="P10 to P90", hovertemplate=f"month %{{x}}: P10 {cur.symbol}%{{y:,.0f}}<extra></extra>"),
        dict(type="scatter", x=months, y=p50, mode="lines", line=dict(width=2, color="#111827"), name="median",
             hovertemplate=f"month %{{x}}: median {cur.symbol}%{{y:,.0f}}<extra></extra>"),
    ]
    # The legend sits inside, top left (cash grows to the right): below the plot it covered "month".
    layout = dict(title=dict(text=title), xaxis=dict(title=dict(text="month")),
                  yaxis=dict(title=dict(text=cur.code), tickprefix=cur.symbol), height=380,
                  shapes=[dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=0, y1=0,
                               line=dict(color=LOW, dash="dash"))],
                  **{**_LAYOUT, "legend": dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.7)")})
    return go.Figure(dict(data=data, layout=layout))
