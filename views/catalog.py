"""Reference data: the GPU catalog, the model presets and the default assumptions, with sources."""

import pandas as pd
import streamlit as st

from engine import catalog
from engine.estimate import models as model_specs
from ui.currency import money_table

st.title("Reference data")
versions = catalog.catalog_versions()
st.caption(f"Versioned data files in engine/catalog/ — GPUs {versions['gpus']}, models {versions['models']}, "
           f"defaults {versions['defaults']}, currencies {versions['currencies']}, open models' config.json files "
           f"{versions['hf_configs']} (generated through the config.json importer). Every row carries its source and "
           "date; prices are meant to be edited. `platform` is the software stack: only CUDA rows get CUDA paths.")

st.subheader("GPUs")
gpus = money_table(pd.DataFrame([{f: getattr(g, f) for f in g.__dataclass_fields__} for g in catalog.gpus().values()]))
st.dataframe(gpus, hide_index=True, width="stretch")
st.download_button("Download GPUs (CSV)", gpus.to_csv(index=False), "gpus.csv", "text/csv", on_click="ignore")

st.subheader("Model presets")
rows = []
for spec in model_specs.models().values():
    s = spec.summary()
    rows.append({k: s[k] for k in ("id", "name", "params_total", "params_active", "n_layers", "d_model", "n_heads",
                                   "n_kv_heads", "head_dim", "d_ff", "ffn", "vocab_size", "context", "attention",
                                   "sliding_window", "n_experts",
                                   "top_k", "train_tokens", "source", "date")})
models = pd.DataFrame(rows)
st.dataframe(models, hide_index=True, width="stretch",
             column_config={"params_total": st.column_config.NumberColumn("params (computed)", format="localized"),
                            "params_active": st.column_config.NumberColumn("active params", format="localized")})
st.download_button("Download models (CSV)", models.to_csv(index=False), "models.csv", "text/csv", on_click="ignore")

st.subheader("Default assumptions")
st.dataframe(pd.DataFrame(catalog.default_rows()), hide_index=True, width="stretch")

st.subheader("Currencies")
st.caption("Rates per US dollar, each with its source and date; the sidebar setting can override them. Catalog "
           "prices are USD list prices converted at the rate, not local quotes: type your own in your currency.")
st.dataframe(pd.DataFrame(catalog.currency_rows()), hide_index=True, width="stretch")

st.subheader("API offers")
apis = catalog.api_file()
st.caption(f"engine/catalog/apis.toml {apis['version']}: list prices per million tokens in each vendor's own currency "
           f"(yuan for China's vendors), taken {apis['taken']}; open_model is the preset that serves the same "
           "weights. Add a negotiated price on the Serving page or with `--api-file`.")
st.dataframe(pd.DataFrame(apis["offer"]), hide_index=True, width="stretch")

st.subheader("Readiness ranges")
st.caption("Factors on a scenario's own values for the readiness Monte Carlo (engine/catalog/uncertainty.toml).")
st.dataframe(pd.DataFrame(catalog.uncertainty_rows()), hide_index=True, width="stretch")

st.subheader("Fine-tuning software stacks")
st.caption("How each stack holds the logits and loss, where checkpoints live, its optimizer, attention and "
           "speed, with the code or docs each value follows (engine/catalog/stacks.toml).")
stacks = pd.DataFrame(catalog.stack_rows())
stacks["methods"] = stacks["methods"].map(", ".join)
st.dataframe(stacks.astype(str), hide_index=True, width="stretch")
