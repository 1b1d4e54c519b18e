"""The page registry: one list that app.py's st.navigation and every in-page link are built from."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.errors import StreamlitAPIException


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to the repository root (the entry script's folder)
    title: str
    icon: str
    url_path: str  # "" for the default page
    blurb: str
    section: str


PAGES: tuple[PageInfo, ...] = (
    PageInfo("views/home.py", "Overview", ":material/flight_takeoff:", "", "What it costs, at a glance", "Preflight"),
    PageInfo("views/readiness.py", "Readiness", ":material/rocket_launch:", "readiness",
             "Runway, margin, break-even and how sure: your numbers, verdicts and a report", "Preflight"),
    PageInfo("views/train.py", "Training cost", ":material/payments:", "train",
             "FLOPs, GPU-hours, wall clock, dollars, energy, CO₂", "Cost & compute"),
    PageInfo("views/memory.py", "Memory", ":material/memory:", "memory",
             "ZeRO, tensor / pipeline parallelism, recompute, KV cache", "Cost & compute"),
    PageInfo("views/serve.py", "Serving", ":material/speed:", "serve",
             "Latency, throughput, GPUs for a load, cost per M tokens", "Cost & compute"),
    PageInfo("views/finetune.py", "Fine-tuning", ":material/tune:", "finetune",
             "Full, LoRA, QLoRA on your tokens: which GPUs fit, time and cost", "Cost & compute"),
    PageInfo("views/scaling.py", "Compute-optimal", ":material/insights:", "scaling",
             "Chinchilla N and D for a FLOP or dollar budget", "Cost & compute"),
    PageInfo("views/data.py", "Data checks", ":material/fact_check:", "data",
             "Duplicates, PII, leakage, labels, drift: a readiness score and a report", "Data & models"),
    PageInfo("views/lab.py", "Model lab", ":material/model_training:", "lab",
             "Train a small Transformer live: curves, checkpoints, resume, samples", "Data & models"),
    PageInfo("views/infer.py", "Inference", ":material/bolt:", "infer",
             "Export to ONNX, run on PyTorch / onnxruntime / TensorRT, stream a demo, benchmark", "Data & models"),
    PageInfo("views/tune.py", "Sweeps", ":material/tune:", "tune",
             "Budget-aware hyperparameter search: TPE, pruning, predicted vs measured cost", "Data & models"),
    PageInfo("views/catalog.py", "Reference data", ":material/table:", "catalog",
             "GPU catalog, model presets, defaults, with sources", "Cost & compute"),
)


def navigation_pages() -> dict[str, list]:
    """st.Page objects grouped by section, for st.navigation."""
    sections: dict[str, list] = {}
    for info in PAGES:
        page = st.Page(info.path, title=info.title, icon=info.icon, default=info.url_path == "",
                       url_path=info.url_path or None)
        sections.setdefault(info.section, []).append(page)
    return sections


def link(info: PageInfo) -> None:
    """A link to another page: st.page_link under the app's navigation, a plain relative link when
    the page runs on its own (AppTest.from_file, or a script run without app.py)."""
    try:
        st.page_link(info.path, label=info.title, icon=info.icon)
    except StreamlitAPIException:
        st.markdown(f"[{info.title}](./{info.url_path})")
