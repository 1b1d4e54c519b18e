"""The Inference page in a real browser: a shared link preselects a run, the demo's text grows while it
streams, and a benchmark job fills the table whose CSV downloads. See conftest.py for the harness."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import AppPage, StreamlitServer

pytestmark = pytest.mark.e2e

_STREAM_TEXT_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stMarkdownContainer"]'))
  .map(e => e.innerText).join('\\n').length
"""


@pytest.fixture
def trained(streamlit_server: StreamlitServer) -> str:
    """A tiny character LM registered in the server's workspace (a few steps: the demo needs weights, not skill)."""
    import os

    from engine.lab.trainer import TrainConfig, train

    home = streamlit_server.home
    old = os.environ.get("PREFLIGHT_HOME")
    os.environ["PREFLIGHT_HOME"] = str(home)
    try:
        res = train(TrainConfig(sample="stories", tokenizer="char", preset="tiny", n_layers=2, d_model=64, n_heads=4,
                                n_kv_heads=2, d_ff=128, context=64, batch_size=4, max_steps=3, eval_every=3,
                                eval_batches=1, sample_tokens=0, device="cpu", threads=1, name="e2e-infer",
                                out=str(home / "runs" / "e2e-infer"), registry=str(home / "registry.sqlite")))
    finally:
        if old is None:
            os.environ.pop("PREFLIGHT_HOME", None)
        else:
            os.environ["PREFLIGHT_HOME"] = old
    assert res.status == "finished"
    return "e2e-infer"


def test_demo_streams_and_benchmark_csv_downloads(app: AppPage, trained: str) -> None:
    from playwright.sync_api import expect

    app.goto(f"infer?run={trained}")
    app.assert_no_exceptions()
    expect(app.page.get_by_role("combobox", name="Run", exact=True)).to_have_value(trained)
    backend = app.page.get_by_role("combobox", name="Backend", exact=True)
    # the page opened on an ONNX backend and is exporting for it in its own process (both cores on this
    # machine): the switch's rerun waits for CPU, so it gets longer than the usual idle timeout
    app.rerun_after(lambda: (backend.click(), app.page.get_by_role("option", name="torch", exact=True).click()),
                    timeout_ms=90_000)
    app.commit(app.number_input("New tokens"), "400")
    before = app.page.evaluate(_STREAM_TEXT_JS)
    app.page.get_by_role("button", name="Generate").click()
    lengths = [before]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        n = app.page.evaluate(_STREAM_TEXT_JS)
        if n != lengths[-1]:
            lengths.append(n)
        if app.page.get_by_test_id("stMetric").filter(has_text="Time to first token").count():
            break
        app.page.wait_for_timeout(50)
    app.wait_idle()
    assert len([b for a, b in zip(lengths, lengths[1:]) if b > a]) >= 2, f"the text did not grow while streaming: {lengths}"
    assert app.metric_value("New tokens") == "400"
    app.assert_no_exceptions()

    app.commit(app.number_input("Sequence length"), "16")
    app.page.get_by_role("button", name="Run benchmark").click()
    deadline = time.monotonic() + 180
    while not app.page.get_by_role("button", name="Download table (CSV)").count():
        assert time.monotonic() < deadline, "no benchmark table"
        app.page.wait_for_timeout(500)
    assert app.page.get_by_test_id("stDataFrame").filter(has_text="onnxruntime").count() or \
        app.page.get_by_test_id("stDataFrame").count() >= 2  # the benchmark table beside the backends table
    with app.page.expect_download(timeout=20_000) as info:
        app.page.get_by_role("button", name="Download table (CSV)").click()
    download = info.value
    assert download.suggested_filename == "inference-benchmark.csv"
    with open(download.path(), encoding="utf-8") as fh:
        head = fh.readline()
    assert "backend" in head and "p50_ms" in head
    app.assert_no_exceptions()
