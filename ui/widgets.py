"""Reusable widgets: catalog pickers, quantity inputs, error display and downloads.

Pages stay thin: widgets in, one engine call, metrics and charts out. Every page is self-sufficient
(it imports what it needs and sets nothing that another page relies on), so it also works when
opened by a deep link or run alone by ``AppTest.from_file``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from engine import catalog
from engine.errors import ValidationError
from engine.units import format_count, parse_quantity

T = TypeVar("T")


def model_picker(label: str = "Model preset", key: str = "model", default: str = "llama-3-8b") -> catalog.ModelSpec:
    models = catalog.models()
    ids = list(models)
    choice = st.selectbox(label, ids, index=ids.index(default), key=key,
                          format_func=lambda i: f"{models[i].name} · {format_count(models[i].params_total)}")
    return models[choice]


def gpu_picker(label: str = "GPU", key: str = "gpu", default: str = "h100-sxm") -> catalog.GPUSpec:
    gpus = catalog.gpus()
    ids = list(gpus)
    choice = st.selectbox(label, ids, index=ids.index(default), key=key, format_func=lambda i: gpus[i].name)
    return gpus[choice]


def quantity_input(label: str, default: str, key: str, help: str | None = None) -> float | None:
    """A text box that takes '2T', '70B' or '1.4e12'. Returns None (after showing the error) if bad."""
    text = st.text_input(label, value=default, key=key, help=help or "a number like 2e12, or with K/M/B/T suffix")
    try:
        value = parse_quantity(text, label.lower())
    except ValidationError as exc:
        st.error(str(exc))
        return None
    if value <= 0:
        st.error(f"{label.lower()} must be > 0, got {text!r}")
        return None
    return value


def run_engine(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the engine; a ValidationError becomes one ``st.error`` line and stops this page's run."""
    try:
        return fn(*args, **kwargs)
    except ValidationError as exc:
        st.error(str(exc))
        st.stop()
        raise  # unreachable: st.stop() raises


def downloads(name: str, result: dict | None = None, table: pd.DataFrame | None = None, key: str = "") -> None:
    """JSON of the headline estimate and CSV of the table behind the chart, side by side."""
    cols = st.columns(2)
    if result is not None:
        cols[0].download_button("Download estimate (JSON)", json.dumps(result, indent=2, allow_nan=False),
                                file_name=f"{name}.json", mime="application/json", on_click="ignore",
                                key=f"dl-json-{key or name}")
    if table is not None:
        cols[1].download_button("Download table (CSV)", table.to_csv(index=False), file_name=f"{name}.csv",
                                mime="text/csv", on_click="ignore", key=f"dl-csv-{key or name}")


def money(value: float) -> str:
    if value >= 1e9:
        return f"${value / 1e9:,.2f}B"
    if value >= 1e6:
        return f"${value / 1e6:,.2f}M"
    if value >= 1e3:
        return f"${value / 1e3:,.1f}K"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"
