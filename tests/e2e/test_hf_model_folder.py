"""A Hugging Face model folder in a real browser: a tiny random Qwen2 checkpoint (built offline with
engine/lab/hf_random.py) under the server workspace's models/ is fine-tuned with LoRA from the Model lab
page to the end, its predicted and measured step times shown, and the fine-tuned run's demo streams on the
Inference page. See conftest.py for the harness.

``PREFLIGHT_E2E_SCREENSHOTS=DIR`` saves full-page screenshots of both pages there (for looking at them)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage, StreamlitServer

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_S = 300   # import torch + transformers + peft, 3 steps, an evaluation and the merged export, busy cores
SLOW_RUN_MS = 120_000  # a script run that loads transformers in the server process, on busy cores

_STREAM_TEXT_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stMarkdownContainer"]'))
  .map(e => e.innerText).join('\\n').length
"""


@pytest.fixture
def model_folder(streamlit_server: StreamlitServer) -> Iterator[Path]:
    """A tiny random Qwen2 (2 layers, 64 wide, a 300-token BPE with ChatML) in the server's models/; the
    fine-tuning process it starts is ended at teardown if it is still going."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from engine.lab.hf_random import build_checkpoint, train_tokenizer

    words = "the cat sat on a mat and the dog ran to the park while birds sang in green trees".split()
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(10)) + "." for i in range(200)]
    folder = build_checkpoint(streamlit_server.home / "models" / "tiny-qwen2", "qwen2",
                              train_tokenizer(texts, vocab_size=300), seed=1, hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              max_position_embeddings=256)
    yield folder
    from engine.lab import jobs
    from engine.store import ACTIVE, Registry

    registry = Registry(streamlit_server.home / "registry.sqlite")
    for _, run in registry.list_runs().iterrows():
        if run["status"] in ACTIVE:
            jobs.terminate(run["name"], registry=registry)


def _shot(app: AppPage, name: str) -> None:
    """A picture of the whole page: Streamlit scrolls inside stMain, so the viewport grows to its height first."""
    folder = os.environ.get("PREFLIGHT_E2E_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = app.page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight ?? 1000")
    app.page.set_viewport_size({"width": 1400, "height": min(int(height) + 200, 10_000)})
    app.page.wait_for_timeout(800)
    app.page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
    app.page.set_viewport_size({"width": 1400, "height": 1000})


def _number(scope, app: AppPage, label: str):
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    field = scope.get_by_test_id("stNumberInput").filter(
        has=app.page.get_by_test_id("stWidgetLabel").get_by_text(label_re)).locator("input")
    assert field.count() == 1, f"one number input {label!r} in the section"
    return field


def _open(section) -> None:
    """Open a collapsed expander (Streamlit 1.67 marks a collapsed one's stExpanderDetails ``inert``)."""
    if section.get_by_test_id("stExpanderDetails").first.get_attribute("inert") is not None:
        section.locator("summary").first.click()
        section.page.wait_for_timeout(500)


def _pick(app: AppPage, scope, label: str, option: str | re.Pattern, timeout_ms: int | None = None) -> None:
    """Choose ``option`` in a selectbox. A click on a selectbox just shown (an expander opening) may only focus
    it: click again until its list is open."""
    from playwright.sync_api import expect

    box = scope.get_by_role("combobox", name=label, exact=True)

    def action() -> None:
        for _ in range(3):
            box.click()
            try:
                expect(box).to_have_attribute("aria-expanded", "true", timeout=3_000)
                break
            except AssertionError:
                continue
        app.page.get_by_role("option", name=option, exact=isinstance(option, str)).click()

    app.rerun_after(action, **({"timeout_ms": timeout_ms} if timeout_ms else {}))


def test_fine_tune_a_model_folder_then_stream_its_demo(app: AppPage, model_folder: Path) -> None:
    from playwright.sync_api import expect

    app.goto("lab")
    app.assert_no_exceptions()
    section = app.page.get_by_test_id("stExpander").filter(has_text="Fine-tune a model folder")
    expect(section).to_have_count(1)
    _open(section)
    _pick(app, section, "Found under the workspace's models/", re.compile(r"tiny-qwen2$"))
    app.commit(_number(section, app, "Fine-tuning steps"), "3")
    app.commit(_number(section, app, "Fine-tuning batch (sequences)"), "2")
    app.commit(_number(section, app, "Fine-tuning context (tokens)"), "32")
    app.rerun_after(lambda: section.get_by_role("button", name="Start fine-tuning").click(), timeout_ms=SLOW_RUN_MS)
    app.assert_no_exceptions()

    heading = app.page.get_by_role("heading", name=re.compile(r"^.*tiny-qwen2-lora: [a-z]+$"))
    expect(heading.first, "the run's live view").to_be_visible(timeout=SLOW_RUN_MS)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not heading.first.inner_text().endswith(": finished"):
        title = heading.first.inner_text()
        assert not re.search(r": (failed|diverged|stopped)$", title), title
        assert time.monotonic() < deadline, f"not finished after {RUN_TIMEOUT_S} s: {title!r}"
        app.page.wait_for_timeout(500)
    app.wait_idle()
    expect(app.page.get_by_test_id("stProgress").first).to_contain_text("step 3 of 3")
    assert 0 < float(app.metric_value("Train loss")) < 20
    measured = app.metric_value("Step time, measured")
    predicted = app.metric_value("Step time, predicted")
    assert re.fullmatch(r"\d+(\.\d+)? (ms|s)", measured) and re.fullmatch(r"\d+(\.\d+)? (ms|s)", predicted), \
        (measured, predicted)
    assert app.metric_value("Model memory, predicted") != "–" and app.metric_value("Trainable params") != "–"
    expect(app.page.get_by_text(re.compile(r"^Predicted step time: ")).first).to_be_visible()
    app.assert_no_exceptions()
    _open(section)  # for the picture
    _shot(app, "lab-hf")

    app.goto("infer")
    app.assert_no_exceptions()
    kind = app.page.get_by_test_id("stRadio").filter(has_text="Model folder (Hugging Face)")
    app.rerun_after(lambda: kind.get_by_text("Model folder (Hugging Face)", exact=True).click(), timeout_ms=SLOW_RUN_MS)
    _pick(app, app.page, "Fine-tuned run or model folder", "run: tiny-qwen2-lora", timeout_ms=SLOW_RUN_MS)
    app.assert_no_exceptions()
    expect(app.page.get_by_text(re.compile(r"tiny-qwen2-lora.*merged · qwen2 · torch · fp32 · chat template")).first) \
        .to_be_visible(timeout=SLOW_RUN_MS)
    app.commit(app.number_input("New tokens"), "200")
    before = app.page.evaluate(_STREAM_TEXT_JS)
    app.page.get_by_role("button", name="Generate").click()
    lengths = [before]
    deadline = time.monotonic() + 60
    while not app.page.get_by_test_id("stMetric").filter(has_text="Time to first token").count():
        assert time.monotonic() < deadline, f"no generation metrics after 60 s; text lengths {lengths}"
        n = app.page.evaluate(_STREAM_TEXT_JS)
        if n != lengths[-1]:
            lengths.append(n)
        app.page.wait_for_timeout(30)
    app.wait_idle()
    after = app.page.evaluate(_STREAM_TEXT_JS)
    new_tokens = int(app.metric_value("New tokens"))
    assert 1 <= new_tokens <= 200 and after > before, (new_tokens, before, after, lengths)
    assert re.fullmatch(r"\d+ ms", app.metric_value("Time to first token"))
    assert re.fullmatch(r"[\d.]+ tok/s", app.metric_value("Decode")), app.metric_value("Decode")
    app.assert_no_exceptions()
    _shot(app, "infer-hf")
