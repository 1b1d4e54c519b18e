"""The data page's fine-tuning figure: "fine-tuning MODEL with METHOD on these N tokens × E epochs takes
… on …, about $…", with the model, method and epochs chosen here. Kept apart from views/data.py so that
page only calls :func:`finetune_figure` with its token count."""

from __future__ import annotations

import streamlit as st

from engine.estimate.finetune import METHODS
from engine.estimate.finetune_link import DATA_LINK_METHOD, DATA_LINK_MODEL, finetune_for_tokens, finetune_sentence
from engine.estimate.models import models
from engine.units import format_count
from ui.currency import current_currency
from ui.navigation import PAGES, link


def finetune_figure(tokens: float, key: str = "dc-ft") -> None:
    """Pickers for an open model, a method and epochs, and the sentence for ``tokens`` under them."""
    specs = models()
    ids = list(specs)
    c1, c2, c3 = st.columns([2, 1, 1])
    model = c1.selectbox("Fine-tune which open model", ids, index=ids.index(DATA_LINK_MODEL), key=f"{key}-model",
                         format_func=lambda i: f"{specs[i].name} · {format_count(specs[i].params_total)}")
    method = c2.selectbox("Method", METHODS, index=METHODS.index(DATA_LINK_METHOD), key=f"{key}-method",
                          format_func=lambda m: {"full": "Full", "lora": "LoRA", "qlora": "QLoRA"}[m])
    epochs = c3.number_input("Epochs", 0.5, 100.0, 1.0, 0.5, key=f"{key}-epochs")
    figure = finetune_for_tokens(tokens, model=model, method=method, epochs=float(epochs))
    if figure is None:
        st.caption("No GPU type in the catalog holds that fine-tune within 1024 GPUs.")
    else:
        st.info(finetune_sentence(figure, current_currency()))
    link(next(p for p in PAGES if p.url_path == "finetune"))
