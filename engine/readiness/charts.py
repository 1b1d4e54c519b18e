"""Readiness charts (plotly), shared by the page and the HTML report: the tornado of what moves runway and
margin most, and the fan of cash over time."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

LOW, HIGH = "#dc2626", "#2563eb"
_LAYOUT = dict(margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.15))


def tornado(rows: list[dict[str, Any]]) -> go.Figure:
    """Runway (months) and margin per request (USD) at each assumption's low and high factor, one bar
    pair per assumption, biggest runway swing on top, drawn around the point value."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Runway after training (months)", "Gross margin per request (USD)"),
                        shared_yaxes=True, horizontal_spacing=0.04)
    if not rows:
        return fig
    order = list(reversed(rows))  # plotly draws the first category at the bottom
    labels = [r["label"] for r in order]
    for col, metric in ((1, "runway"), (2, "margin")):
        base = order[0][f"{metric}_base"] or 0.0
        for end, color in (("low", LOW), ("high", HIGH)):
            values = [(r[f"{metric}_{end}"] if r[f"{metric}_{end}"] is not None else base) - base for r in order]
            factors = [r[f"{end}_factor"] for r in order]
            fig.add_bar(y=labels, x=values, base=base, orientation="h", marker_color=color,
                        name=f"assumption at its {end} end", showlegend=col == 1, customdata=factors,
                        hovertemplate="%{y}<br>×%{customdata:g}: %{x:+.4g} from the point value<extra></extra>",
                        row=1, col=col)
        fig.add_vline(x=base, line_color="#111827", line_width=1, row=1, col=col)
    fig.update_layout(barmode="overlay", title="What moves runway and margin most (one assumption at a time)",
                      height=120 + 42 * len(rows), **_LAYOUT)
    return fig


def cash_fan(fan: dict[str, list[float]], cash_out_probability: float | None = None) -> go.Figure:
    """Cash at the end of each month: the P10-P90 band and the median over the Monte Carlo samples."""
    months, p10, p50, p90 = fan["month"], fan["p10"], fan["p50"], fan["p90"]
    fig = go.Figure()
    fig.add_scatter(x=months, y=p90, mode="lines", line=dict(width=0, color=HIGH), showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=months, y=p10, mode="lines", line=dict(width=0, color=HIGH), fill="tonexty",
                    fillcolor="rgba(37,99,235,0.18)", name="P10 to P90", hovertemplate="month %{x}: P10 $%{y:,.0f}<extra></extra>")
    fig.add_scatter(x=months, y=p50, mode="lines", line=dict(width=2, color="#111827"), name="median",
                    hovertemplate="month %{x}: median $%{y:,.0f}<extra></extra>")
    fig.add_hline(y=0, line_dash="dash", line_color=LOW)
    title = "Cash over time"
    if cash_out_probability is not None:
        title += f" (runs out within {months[-1]} months in {cash_out_probability:.0%} of samples)"
    fig.update_layout(title=title, xaxis_title="month", yaxis_title="USD", yaxis_tickprefix="$", height=380, **_LAYOUT)
    return fig
