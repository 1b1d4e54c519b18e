"""Plotly figure builders shared by the pages and the HTML reports. Input: the sweep DataFrames."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.money import Currency, get_currency

COMPONENT_COLORS = {
    "weights": "#2563eb", "gradients": "#7c3aed", "optimizer": "#db2777", "activations": "#ea580c",
    "kv_cache": "#16a34a", "overhead": "#94a3b8",
}
CHOSEN, OTHERS = "#2563eb", "#94a3b8"
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
_SIDE_LEGEND = dict(orientation="v", x=1.01, y=1, xanchor="left", yanchor="top")  # where labels fill the bottom


def _empty(title: str, why: str) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of an empty or failing chart."""
    fig = go.Figure()
    fig.add_annotation(text=why, showarrow=False, font=dict(size=14), xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, **_LAYOUT)
    return fig


def _cur(currency: Currency | None) -> Currency:
    """Money charts take USD columns and show them in ``currency`` (default USD)."""
    return currency or get_currency()


def _highlight(gpu_ids, highlight: str | None) -> list[str]:
    """Bar colours that pick out the user's chosen GPU among the catalog's."""
    return [CHOSEN if g == highlight else OTHERS for g in gpu_ids]


def cost_time_by_gpu(df: pd.DataFrame, highlight: str | None = None, currency: Currency | None = None) -> go.Figure:
    """Cost and wall clock of one run per GPU type, side by side."""
    if df.empty:
        return _empty("The same run on each GPU type", "no GPU type can run this at the chosen precision and throughput")
    cur = _cur(currency)
    df = df.sort_values("cost_usd")
    colors = _highlight(df["gpu"], highlight)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"Cost ({cur.code})", "Wall clock (days)"), horizontal_spacing=0.12)
    fig.add_bar(x=df["gpu"], y=df["cost_usd"] * cur.per_usd, marker_color=colors, name="cost",
                hovertemplate=f"%{{x}}: {cur.symbol}%{{y:,.0f}}<extra></extra>", row=1, col=1)
    fig.add_bar(x=df["gpu"], y=df["wall_clock_days"], marker_color=colors, name="days",
                hovertemplate="%{x}: %{y:,.1f} days<extra></extra>", row=1, col=2)
    fig.update_layout(title="The same run on each GPU type", showlegend=False, **_LAYOUT)
    return fig


def memory_breakdown(df: pd.DataFrame, capacity_bytes: float | None = None) -> go.Figure:
    """Per-GPU memory stacked by component, one bar per parallelism plan, with the GPU's capacity."""
    if df.empty:
        return _empty("Memory per GPU by parallelism plan", "no parallelism plan applies to this model")
    fig = go.Figure()
    for comp, color in COMPONENT_COLORS.items():
        if comp in df and (df[comp] > 0).any():
            fig.add_bar(x=df["plan"], y=df[comp] / 2**30, name=comp.replace("_", " "), marker_color=color,
                        hovertemplate="%{x}<br>" + comp + ": %{y:,.1f} GiB<extra></extra>")
    if capacity_bytes:
        fig.add_hline(y=capacity_bytes / 2**30, line_dash="dash", line_color="#dc2626",
                      annotation_text=f"GPU memory {capacity_bytes / 2**30:.0f} GiB", annotation_position="top left")
    fig.update_layout(barmode="stack", title="Memory per GPU by parallelism plan", yaxis_title="GiB", **_LAYOUT)
    return fig


def cost_vs_size(df: pd.DataFrame, point: dict | None = None, currency: Currency | None = None) -> go.Figure:
    """Training cost against model size, one line per tokens-per-parameter ratio (log-log), with the
    user's own run (``point``: params, cost_usd) marked."""
    cur = _cur(currency)
    fig = go.Figure()
    for ratio, part in df.groupby("tokens_per_param", sort=True):
        fig.add_scatter(x=part["params"], y=part["cost_usd"] * cur.per_usd, mode="lines+markers",
                        name=f"{ratio:g} tokens/param",
                        hovertemplate=f"%{{x:.3s}} params<br>{cur.symbol}%{{y:,.0f}}<extra></extra>")
    if point:
        fig.add_scatter(x=[point["params"]], y=[point["cost_usd"] * cur.per_usd], mode="markers", name="this run",
                        marker=dict(size=14, color="#111827", symbol="star"),
                        hovertemplate=f"this run<br>%{{x:.3s}} params<br>{cur.symbol}%{{y:,.0f}}<extra></extra>")
    fig.update_layout(title="Training cost vs model size and tokens", xaxis_title="parameters",
                      yaxis_title=cur.code, xaxis_type="log", yaxis_type="log", **_LAYOUT)
    return fig


def loss_vs_compute(frontier: pd.DataFrame, iso: pd.DataFrame, point: dict | None = None) -> go.Figure:
    """Chinchilla loss vs compute: fixed-size curves and the compute-optimal frontier enveloping them."""
    fig = go.Figure()
    for n, part in iso.groupby("params", sort=True):
        fig.add_scatter(x=part["flops"], y=part["loss"], mode="lines", name=f"N = {n:.3g}",
                        line=dict(width=1), opacity=0.6, hovertemplate="%{x:.2e} FLOPs<br>loss %{y:.3f}<extra></extra>")
    fig.add_scatter(x=frontier["flops"], y=frontier["loss"], mode="lines", name="compute-optimal frontier",
                    line=dict(width=3, color="#111827"),
                    customdata=frontier[["params", "tokens"]].to_numpy(),
                    hovertemplate="%{x:.2e} FLOPs<br>N %{customdata[0]:.3s}, D %{customdata[1]:.3s}<br>loss %{y:.3f}<extra></extra>")
    if point:
        fig.add_scatter(x=[point["flops"]], y=[point["loss"]], mode="markers", name="your budget",
                        marker=dict(size=14, color="#dc2626", symbol="star"))
    low, high = float(frontier["loss"].min()), float(frontier["loss"].max())
    fig.update_layout(title="Loss vs compute", xaxis_title="training FLOPs", yaxis_title="predicted loss (nats/token)",
                      xaxis_type="log", yaxis_range=[low - 0.1, high + 0.6 * (high - low) + 0.1], **_LAYOUT)
    return fig


def serving_curve(df: pd.DataFrame, currency: Currency | None = None) -> go.Figure:
    """Decode throughput and cost per M output tokens as concurrency grows."""
    cur = _cur(currency)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=df["concurrency"], y=df["decode_tokens_per_s"], mode="lines+markers", name="tokens/s (all sequences)")
    fig.add_scatter(x=df["concurrency"], y=df["cost_per_million_output_tokens_usd"] * cur.per_usd, mode="lines+markers",
                    name=f"{cur.symbol} per M output tokens", secondary_y=True)
    levels = [int(c) for c in df["concurrency"]]
    fig.update_xaxes(type="log", title="concurrent sequences", tickvals=levels, ticktext=[str(c) for c in levels],
                     minor=dict(showgrid=False), showgrid=True)
    fig.update_yaxes(title_text="tokens/s", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text=f"{cur.code} per million output tokens", type="log", tickprefix=cur.symbol, tickformat=".2~g",
                     dtick="D2", secondary_y=True, showgrid=False)
    fig.update_layout(title="Throughput and cost vs concurrency", **_LAYOUT)
    return fig


def serving_cost_by_gpu(df: pd.DataFrame, highlight: str | None = None, currency: Currency | None = None) -> go.Figure:
    """Cost per million output tokens on each GPU type, labelled with the GPUs per replica it needs."""
    cur = _cur(currency)
    title = f"{cur.symbol} per million output tokens by GPU type"
    if df.empty:
        return _empty(title, "no GPU type can hold this model and context")
    df = df.sort_values("cost_per_million_output_tokens_usd")
    colors = _highlight(df["gpu"], highlight)
    fig = go.Figure()
    fig.add_bar(x=df["gpu"], y=df["cost_per_million_output_tokens_usd"] * cur.per_usd, marker_color=colors,
                text=[f"×{n}" for n in df["gpus_per_replica"]], textposition="outside",
                customdata=df[["gpus_per_replica", "time_per_output_token_ms"]].to_numpy(),
                hovertemplate=f"%{{x}} ×%{{customdata[0]}}<br>{cur.symbol}%{{y:.3f}} per M output tokens"
                              "<br>%{customdata[1]:.1f} ms per token<extra></extra>")
    fig.update_layout(title=title, yaxis_title=cur.code,
                      xaxis_title="×N: GPUs per replica, the cheapest group up to 8", showlegend=False, **_LAYOUT)
    return fig


# ---- data checks -------------------------------------------------------------------------------------
SEVERITY_COLORS = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#d97706", "low": "#2563eb", "info": "#6b7280"}


GAUGE_TICKS = [0, 20, 40, 60, 80, 100]
GAUGE_SIDE_MARGIN = 40   # px each side: room for the "100" label at the arc's right end


def readiness_gauge(score: float) -> go.Figure:
    """The readiness score as a gauge: red below 40 (not ready), amber to 75, green above."""
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=score,
        gauge=dict(axis=dict(range=[0, 100], tickvals=GAUGE_TICKS, ticks="outside"),
                   bar=dict(color="#111827", thickness=0.25),
                   steps=[dict(range=[0, 40], color="#fecaca"), dict(range=[40, 75], color="#fde68a"),
                          dict(range=[75, 100], color="#bbf7d0")]),
    ))
    # The end ticks' labels ("0", "100") sit beside the arc's ends, outside the indicator's domain: the
    # side margins must hold a three-digit label, or "100" is clipped to "10".
    fig.update_layout(height=230, margin=dict(l=GAUGE_SIDE_MARGIN, r=GAUGE_SIDE_MARGIN, t=30, b=10))
    return fig


def data_check_figures(report: dict) -> list[go.Figure]:
    """The distribution charts of a data-check report (``report["charts"]``): missing cells by column,
    label counts per split, text lengths. Only the charts that have something to show."""
    charts = report.get("charts") or {}
    figs = []
    missing = {k: v for k, v in (charts.get("missing_by_column") or {}).items() if v}
    if missing:
        fig = go.Figure(go.Bar(x=list(missing), y=list(missing.values()), marker_color=SEVERITY_COLORS["medium"]))
        fig.update_layout(title="Missing cells by column", xaxis_title="column", yaxis_title="missing cells")
        figs.append(fig)
    labels = charts.get("label_counts") or {}
    if labels:
        fig = go.Figure(go.Bar(name="train", x=list(labels), y=list(labels.values()), marker_color=CHOSEN))
        test = charts.get("test_label_counts") or {}
        if test:
            fig.add_bar(name="test", x=list(test), y=list(test.values()), marker_color=OTHERS)
        fig.update_layout(title=f"Label counts ({report.get('label_col')})", xaxis_title="label", yaxis_title="rows")
        figs.append(fig)
    hist = charts.get("text_length_hist")
    if hist and sum(hist.get("counts", [])):
        edges = hist["edges"]
        names = [f"{edges[i]}–{edges[i + 1] - 1}" if edges[i + 1] is not None else f"{edges[i]}+"
                 for i in range(len(edges) - 1)]
        fig = go.Figure(go.Bar(x=names, y=hist["counts"], marker_color="#059669"))
        fig.update_layout(title=f"Text length of '{report.get('text_col')}' (characters)", xaxis_title="characters",
                          yaxis_title="rows")
        figs.append(fig)
    for fig in figs:
        fig.update_layout(height=340, **_LAYOUT)
    return figs


# ---- fine-tuning -------------------------------------------------------------------------------------
FINETUNE_COMPONENTS = ("weights", "adapters", "gradients", "optimizer", "activations", "checkpoints", "logits",
                       "overhead")
METHOD_COLORS = {"full": "#db2777", "lora": "#2563eb", "qlora": "#16a34a"}
_COMPONENT_COLOR = {**COMPONENT_COLORS, "adapters": "#0891b2", "checkpoints": "#ca8a04", "logits": "#dc2626"}


def _panels(n: int, gap: float = 0.04) -> list[list[float]]:
    """Horizontal domains of ``n`` side-by-side panels (laid out by hand: make_subplots costs ~0.1 s)."""
    width = (1.0 - gap * (n - 1)) / n
    return [[i * (width + gap), i * (width + gap) + width] for i in range(n)]


def _panel_titles(titles: list[str], domains: list[list[float]]) -> list[dict]:
    return [dict(text=t, x=(d[0] + d[1]) / 2, y=1.0, xref="paper", yref="paper", showarrow=False, xanchor="center",
                 yanchor="bottom") for t, d in zip(titles, domains)]


FINETUNE_BREAKDOWN = (  # (estimate field, label, where)
    ("weights_bytes", "weights", "GPU"), ("adapter_bytes", "adapters", "GPU"), ("gradients_bytes", "gradients", "GPU"),
    ("optimizer_bytes", "optimizer", "GPU"), ("activations_bytes", "activations (live layers)", "GPU"),
    ("checkpoint_bytes", "activation checkpoints on the GPU", "GPU"), ("logits_bytes", "logits and loss", "GPU"),
    ("cuda_context_bytes", "CUDA context", "GPU"), ("fragmentation_bytes", "allocator fragmentation", "GPU"),
    ("host_bytes", "on the host: offloaded checkpoints, paged optimizer", "host"),
)


def finetune_breakdown(est: dict) -> go.Figure:
    """One fine-tuning estimate's memory, one bar per component (GPU parts, then what lives on the host),
    with the GPU's capacity and, where given, the host's. Input: ``FinetuneEstimate.to_dict()``."""
    labels = [label for _, label, _ in FINETUNE_BREAKDOWN]
    values = [float(est.get(key) or 0.0) / 2**30 for key, _, _ in FINETUNE_BREAKDOWN]
    colors = ["#94a3b8" if where == "host" else "#2563eb" for _, _, where in FINETUNE_BREAKDOWN]
    fig = go.Figure(go.Bar(y=labels, x=values, orientation="h", marker_color=colors,
                           hovertemplate="%{y}: %{x:,.2f} GiB<extra></extra>"))
    fig.add_vline(x=float(est["gpu_memory_bytes"]) / 2**30, line_color="#dc2626", line_dash="dash",
                  annotation_text="GPU memory", annotation_position="top")
    peak = "the larger of the live layer and the logits counts (never alive together)" if est.get(
        "gradient_checkpointing") else "all of them are alive when the loss is computed"
    fig.update_layout(title=f"Memory by component ({est.get('stack', '')} stack): {peak}", xaxis_title="GiB",
                      height=420, yaxis=dict(autorange="reversed"), **_LAYOUT)
    return fig


def finetune_memory_by_gpu(df: pd.DataFrame) -> go.Figure:
    """Per-GPU memory stacked by component, one panel per method, one bar per GPU type at its smallest
    fitting count, each GPU's capacity marked. Input: ``sweeps.finetune_by_gpu``."""
    fit = df[df["fits"].astype(bool)] if not df.empty else df
    if fit.empty:
        return _empty("Memory per GPU by method", "no GPU type holds this run within the GPU counts tried")
    names = {"full": "Full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}
    methods = list(dict.fromkeys(df["method"]))
    domains = _panels(len(methods))
    traces, layout = [], {}
    for i, method in enumerate(methods):
        axis = "x" if i == 0 else f"x{i + 1}"
        part = df[df["method"] == method]
        labels = [f"{g} ×{int(n)}" if pd.notna(n) else f"{g} (no fit)" for g, n in zip(part["gpu"], part["gpus"])]
        for comp in FINETUNE_COMPONENTS:
            traces.append(go.Bar(x=labels, y=part[comp].fillna(0.0) / 2**30, name=comp, legendgroup=comp,
                                 marker_color=_COMPONENT_COLOR[comp], showlegend=i == 0, xaxis=axis, yaxis="y",
                                 hovertemplate="%{x}<br>" + comp + ": %{y:,.1f} GiB<extra></extra>"))
        traces.append(go.Scatter(x=labels, y=part["memory_gib"], mode="markers", name="GPU memory", legendgroup="cap",
                                 showlegend=i == 0, xaxis=axis, yaxis="y",
                                 marker=dict(symbol="line-ew-open", size=12, color="#dc2626", line=dict(width=3)),
                                 hovertemplate="%{x}<br>capacity %{y:,.0f} GiB<extra></extra>"))
        layout["xaxis" if i == 0 else f"xaxis{i + 1}"] = dict(domain=domains[i], anchor="y", tickangle=-90,
                                                                 automargin=True, tickfont=dict(size=10))
    fig = go.Figure(traces)
    # The legend sits to the right: below the panels it covered the GPU labels.
    fig.update_layout(barmode="stack", title="Memory per GPU at each type's smallest fitting count",
                      yaxis_title="GiB per GPU", height=520,
                      annotations=_panel_titles([names.get(m, m) for m in methods], domains), **layout,
                      **{**_LAYOUT, "legend": _SIDE_LEGEND})
    return fig


def finetune_cost_time(df: pd.DataFrame, currency: Currency | None = None) -> go.Figure:
    """Cost (in ``currency``, default USD) and wall clock of the run per GPU type, one bar per method
    (smallest fitting counts)."""
    cur = currency or get_currency()
    fit = df[df["fits"].astype(bool)] if not df.empty else df
    if fit.empty:
        return _empty("Cost and wall clock by GPU type", "no GPU type holds this run within the GPU counts tried")
    # Two panels laid out by hand (make_subplots costs ~0.1 s, a tenth of the page's budget).
    traces = []
    for method in dict.fromkeys(fit["method"]):
        part = fit[fit["method"] == method]
        counts = [f"×{int(n)}" for n in part["gpus"]]
        for col, (column, unit, scale) in enumerate((("cost_usd", cur.symbol + "%{y:,.2f}", cur.per_usd),
                                                     ("wall_clock_hours", "%{y:,.1f} h", 1.0)), 1):
            traces.append(go.Bar(x=part["gpu"], y=part[column] * scale, name=method, marker_color=METHOD_COLORS.get(method),
                                 legendgroup=method, showlegend=col == 1, customdata=counts,
                                 xaxis=f"x{col if col > 1 else ''}", yaxis=f"y{col if col > 1 else ''}",
                                 hovertemplate="%{x} %{customdata}<br>" + method + ": " + unit + "<extra></extra>"))
    fig = go.Figure(traces)
    fig.update_layout(
        barmode="group", title="Cost and wall clock by GPU type and method", height=420,
        xaxis=dict(domain=[0, 0.45], tickangle=-90, automargin=True),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", tickangle=-90, automargin=True),
        yaxis=dict(title=cur.code, rangemode="tozero"), yaxis2=dict(anchor="x2", title="hours", rangemode="tozero"),
        annotations=_panel_titles([f"Cost ({cur.code})", "Wall clock (hours)"], [[0, 0.45], [0.55, 1]]),
        **{**_LAYOUT, "legend": _SIDE_LEGEND})
    return fig


def breakeven_chart(curve: pd.DataFrame, load: float, breakevens: dict[str, float | None],
                    currency: Currency | None = None) -> go.Figure:
    """Monthly cost vs load: self-hosting's steps (one per replica) against each API's straight line,
    today's load marked, each break-even load dotted (``engine.estimate.breakeven``)."""
    cur = _cur(currency)
    title = f"Monthly cost vs load ({cur.code}): self-host steps, API lines"
    if curve.empty:
        return _empty(title, "nothing to compare")
    fig = go.Figure()
    fig.add_scatter(x=curve["requests_per_s"], y=curve["self_host_monthly_usd"] * cur.per_usd, mode="lines",
                    name="self-host (whole replicas)", line=dict(color=CHOSEN, width=3))
    for col in curve.columns:
        if col.endswith("_monthly_usd") and col != "self_host_monthly_usd":
            fig.add_scatter(x=curve["requests_per_s"], y=curve[col] * cur.per_usd, mode="lines",
                            name=col.removesuffix("_monthly_usd"))
    fig.add_vline(x=load, line_dash="dash", line_color="#111827", annotation_text="your load")
    points = [(offer, at) for offer, at in breakevens.items() if at is not None]
    if points:  # markers on the axis, named on hover: several break-evens close together stay readable
        fig.add_scatter(x=[at for _, at in points], y=[0] * len(points), mode="markers", name="break-even loads",
                        marker={"symbol": "triangle-up", "size": 12, "color": OTHERS},
                        hovertext=[f"break-even against {offer}: {at:.3g} requests/s" for offer, at in points],
                        hoverinfo="text")
    fig.update_xaxes(title="requests per second", rangemode="tozero")
    fig.update_yaxes(title=f"{cur.code} per month", tickprefix=cur.symbol, rangemode="tozero")
    fig.update_layout(title=title, **_LAYOUT)
    return fig
