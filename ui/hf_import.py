""""Use a config.json" under every model picker: upload or paste a Hugging Face config.json, see the
architecture the importer read (engine/estimate/hf_config.py), and save it into the workspace under a
name, so readiness scenarios, training plans and the fine-tuning page can name it."""

from __future__ import annotations

import streamlit as st

from engine.estimate import models as model_specs
from engine.estimate.architecture import ModelSpec
from engine.estimate.hf_config import (
    CONFIG_MAX_BYTES,
    SUPPORTED_MODEL_TYPES,
    load_hf_config,
    read_hf_config,
)
from engine.units import format_count


def hf_config_input(key: str) -> ModelSpec | None:
    """The imported spec, or None while nothing is uploaded or pasted; a bad config is one st.error
    line and stops the page (ui.widgets.run_engine)."""
    from ui.widgets import run_engine

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
