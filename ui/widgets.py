"""Reusable widgets: catalog pickers, quantity inputs, error display and downloads.

Pages stay thin: widgets in, one engine call, metrics and charts out. Every page is self-sufficient
(it imports what it needs and sets nothing that another page relies on), so it also works when
opened by a deep link or run alone by ``AppTest.from_file``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from engine import catalog
from engine.estimate import models as model_specs
from engine.errors import ValidationError
from engine.requires import TORCH_MISSING, has_package
from engine.estimate.architecture import FFN_KINDS, ModelSpec
from engine.estimate.hf_config import CONFIG_MAX_BYTES, SUPPORTED_MODEL_TYPES, load_hf_config, read_hf_config
from engine.units import format_count, parse_quantity
from ui.currency import current_currency, money_result, money_table

T = TypeVar("T")


def model_picker(label: str = "Model preset", key: str = "model", default: str = "llama-3-8b") -> catalog.ModelSpec:
    """A preset (or a model saved into the workspace), optionally edited into a custom architecture
    (any shape the engine knows), or a model read from a Hugging Face config.json."""

    models = model_specs.models()
    ids = model_specs.model_ids()
    saved = {i: model_specs.get_model(i) for i in ids if i not in models}

    def label_of(i: str) -> str:
        spec = models.get(i) or saved[i]
        return f"{spec.name} · {format_count(spec.params_total)}" + (" · saved" if i in saved else "")

    choice = st.selectbox(label, ids, index=ids.index(default), key=key, format_func=label_of)
    spec = models.get(choice) or saved[choice]
    # one above the other: side by side in a page's third of the width their labels were cut
    imported = st.toggle("Use a config.json", key=f"{key}-hf", help="upload or paste a Hugging Face config.json")
    if st.toggle("Edit the architecture", key=f"{key}-edit", help="start from this preset and change its shape",
                 disabled=imported):
        spec = architecture_editor(spec, key=f"{key}-{spec.id}")
    if imported:
        spec = hf_config_input(key) or spec
    return spec


def architecture_editor(base: catalog.ModelSpec, key: str) -> catalog.ModelSpec:
    """Number inputs prefilled from ``base``; returns the validated custom spec or stops the page
    with one st.error line. Fields not shown (MLA ranks, sliding window...) keep the preset's values."""
    with st.container(border=True):
        c = st.columns(2)
        edited = {
            "n_layers": c[0].number_input("Layers", 1, 100_000, base.n_layers, key=f"{key}-layers"),
            "d_model": c[1].number_input("Hidden size", 1, 1_000_000, base.d_model, key=f"{key}-d"),
            "n_heads": c[0].number_input("Attention heads", 1, 100_000, base.n_heads, key=f"{key}-heads"),
            "n_kv_heads": c[1].number_input("KV heads", 1, 100_000, base.n_kv_heads, key=f"{key}-kv",
                                            help="= heads: MHA; fewer: GQA; 1: MQA"),
            "d_ff": c[0].number_input("Dense FFN size" if base.is_moe else "FFN size", 1, 10_000_000, base.d_ff,
                                      key=f"{key}-ff"),
            "vocab_size": c[1].number_input("Vocabulary", 1, 10_000_000, base.vocab_size, key=f"{key}-vocab"),
            "context": c[0].number_input("Context length", 1, 10_000_000, base.context, key=f"{key}-ctx"),
            "ffn": c[1].selectbox("MLP", list(FFN_KINDS), index=list(FFN_KINDS).index(base.ffn), key=f"{key}-ffn",
                                  help="swiglu: gated, three matrices; gelu: two"),
            "tied_embeddings": c[0].checkbox("Tied embeddings", base.tied_embeddings, key=f"{key}-tied",
                                           help="the LM head reuses the input embedding matrix"),
        }
        if base.is_moe:
            edited["n_experts"] = c[0].number_input("Routed experts", 1, 100_000, base.n_experts, key=f"{key}-experts")
            edited["top_k"] = c[1].number_input("Experts per token", 1, 100_000, base.top_k, key=f"{key}-topk")
            edited["d_ff_expert"] = c[0].number_input("Expert FFN size", 1, 10_000_000, base.d_ff_expert, key=f"{key}-ffe")
        data = {f.name: getattr(base, f.name) for f in fields(base) if f.init}
        data.update({k: int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in edited.items()})
        # A given head_dim (Qwen3, Gemma: not d_model / n_heads) stays while the width and heads do.
        same_heads = (data["d_model"], data["n_heads"]) == (base.d_model, base.n_heads)
        data.update(head_dim=base.head_dim if base.is_mla or same_heads else 0, id="custom", name=f"{base.name} (edited)")
        try:
            spec = model_specs.model_from_mapping(data, where="architecture")
        except ValidationError as exc:
            st.error(str(exc))
            st.stop()
        active = f", {format_count(spec.params_active)} active" if spec.is_moe else ""
        st.caption(f"{format_count(spec.params_total, 4)} parameters{active}, counted from this shape")
    return spec


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


def stop_without_torch(title: str | None = None) -> None:
    """The model pages (lab, sweeps, inference) need PyTorch. Set up without it (``PREFLIGHT_TORCH=skip``:
    the estimator and the data checks only), such a page shows ``title`` and engine.requires' one line, and
    stops. The engine modules a page imports import torch inside the functions that use it, so the page's
    imports stay at the top and this check comes after them."""
    if not has_package("torch"):
        if title:
            st.title(title)
        st.error(TORCH_MISSING)
        st.stop()


def downloads(name: str, result: dict | None = None, table: pd.DataFrame | None = None, key: str = "") -> None:
    """JSON of the headline estimate and CSV of the table behind the chart, side by side. In another
    currency than USD both keep their *_usd fields and add the converted ones (JSON: a currency block)."""
    result, table = money_result(result), money_table(table) if table is not None else None
    cols = st.columns(2)
    if result is not None:
        cols[0].download_button("Download estimate (JSON)", json.dumps(result, indent=2, allow_nan=False),
                                file_name=f"{name}.json", mime="application/json", on_click="ignore",
                                key=f"dl-json-{key or name}")
    if table is not None:
        cols[1].download_button("Download table (CSV)", table.to_csv(index=False), file_name=f"{name}.csv",
                                mime="text/csv", on_click="ignore", key=f"dl-csv-{key or name}")


def money(value: float) -> str:
    """A USD amount in the user's currency (the sidebar setting, ui/currency.py): ``$5.58M``,
    ``¥39.75M``, ``€2.57``. The one way pages show money."""
    return current_currency().format(value)


def watch_job(status: Callable[[str], dict], job: str, key: str, running: Callable[[dict], None], *,
              every: float = 1.0) -> None:
    """The one way a page follows work in its own process (engine/jobs.py): every ``every`` seconds, while
    ``status(job)["status"]`` is "running", ``running(status)`` draws its progress (a bar, the live view,
    a stop button); when it ends, its status goes to ``st.session_state[key + "_done"]``, ``key + "_job"``
    is cleared and the whole page reruns once (so polling stops and the page draws the result)."""
    st.fragment(_watch, run_every=every)(status, job, key, running)


def _watch(status: Callable[[str], dict], job: str, key: str, running: Callable[[dict], None]) -> None:
    s = status(job)
    if s["status"] == "running":
        running(s)
        s = status(job)  # it may have ended while it was drawn: then the page draws the result at once
        if s["status"] == "running":
            return
    st.session_state[f"{key}_done"] = s
    st.session_state.pop(f"{key}_job", None)
    st.rerun()


def hf_config_input(key: str) -> ModelSpec | None:
    """The imported spec, or None while nothing is uploaded or pasted; a bad config is one st.error
    line and stops the page (:func:`run_engine`). The importer is engine/estimate/hf_config.py; a saved
    config lands in the workspace under a name, so readiness scenarios, training plans and the fine-tuning
    page can name it."""
    with st.container(border=True):
        upload = st.file_uploader("Upload config.json", type=["json"], key=f"{key}-hf-upload",
                                  help=f"the config.json of any {', '.join(SUPPORTED_MODEL_TYPES)} model, "
                                       f"at most {CONFIG_MAX_BYTES // 1000:,} kB")
        text = st.text_area("…or paste it", key=f"{key}-hf-paste", height=120,
                            placeholder='{"model_type": "qwen2", "hidden_size": 3584, ...}')
        if upload is not None:
            raw, label = upload.getvalue(), upload.name
        elif text.strip():
            raw, label = text.encode("utf-8"), "pasted"
        else:
            st.caption("Upload or paste a config.json: its architecture is read exactly (parameters as "
                       "transformers counts them).")
            return None
        config = run_engine(read_hf_config, raw)
        title = str(config.get("_name_or_path") or config.get("model_type") or label)
        spec = run_engine(load_hf_config, config, id="hf-config", name=f"{title} (config.json)")
        active = f", {format_count(spec.params_active, 4)} active" if spec.is_moe else ""
        st.caption(f"{spec.name}: {format_count(spec.params_total, 4)} parameters{active}; {spec.n_layers} layers, "
                   f"hidden {spec.d_model}, {spec.n_heads} heads / {spec.n_kv_heads} KV, context {spec.context:,}")
        c = st.columns([3, 1])
        default = title.rsplit("/", 1)[-1].lower()
        name = c[0].text_input("Save into the workspace as", value=default, key=f"{key}-hf-name",
                               help="then readiness scenarios, training plans and the fine-tuning page can name it")
        if c[1].button("Save", key=f"{key}-hf-save"):
            saved = run_engine(model_specs.save_model, name, config)
            st.success(f"Saved as {saved.id!r}: pick it in any model list.")
    return spec
