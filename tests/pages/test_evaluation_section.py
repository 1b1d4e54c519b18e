"""The evaluation section on the model-lab page (ui/evaluation.py): a finished classifier run evaluated in its
own process from the page, then drawn (metrics, confusion heatmap, reliability diagram, tables); an LM report
drawn with perplexity, bits per byte and loss by position."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.lab.evaluate import EvaluateInput, evaluate, save_report
from engine.lab.trainer import TrainConfig, train
from engine.workspace import runs_dir
from tests.pages.conftest import ROOT, assert_clean, metrics

TINY = dict(preset="tiny", n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, d_ff=64, device="cpu", threads=1,
            sample_tokens=0, eval_batches=2)


@pytest.fixture(autouse=True)
def _end_children(end_children) -> None:
    """Processes started by these tests end with them (tests/pages/conftest.py)."""



@pytest.mark.timeout(300)
def test_lab_page_evaluates_a_finished_classifier():
    train(TrainConfig(**TINY, sample="sentiment", task="classify", tokenizer="byte", context=48, batch_size=8,
                      max_steps=3, eval_every=3, out=str(runs_dir() / "cls")))
    at = AppTest.from_file(str(ROOT / "views/lab.py"), default_timeout=90)
    at.run()
    assert_clean(at)
    at.button(key="lab_eval_start_cls").click().run()
    assert_clean(at)
    deadline = time.monotonic() + 240
    while "Macro-F1" not in metrics(at):
        assert time.monotonic() < deadline, "the evaluation report never appeared"
        time.sleep(1.5)
        at.run()
        assert_clean(at)
    shown = metrics(at)
    assert {"Accuracy", "Macro-F1", "Weighted-F1", "ECE"} <= set(shown)
    assert len([c for c in at.get("plotly_chart")]) >= 2  # confusion heatmap and reliability diagram


def test_lm_report_is_drawn(tmp_path):
    out = tmp_path / "lm"
    train(TrainConfig(**TINY, sample="arithmetic", context=16, batch_size=4, max_steps=2, eval_every=2, out=str(out)))
    save_report(evaluate(EvaluateInput(run=str(out), sample_tokens=8)))
    at = AppTest.from_string(f"""
from ui.evaluation import render_report
from engine.lab.evaluate import read_report
render_report(read_report({str(out)!r}), "t")
""", default_timeout=60)
    at.run()
    assert_clean(at)
    assert {"Validation loss", "Perplexity", "Bits per byte"} <= set(metrics(at))
