"""Every page renders without an exception, standalone and through app.py's navigation, reacts to
input changes, and answers bad input with one st.error line instead of a traceback."""

from __future__ import annotations

import json

import pytest

from tests.pages.conftest import ROOT, assert_clean, metrics, run_page
from ui.navigation import PAGES

PAGE_PATHS = [info.path for info in PAGES]


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_every_page_renders_standalone(path):
    at = run_page(path)
    assert at.title, f"{path} shows no title"


def test_app_entry_runs_default_page_and_switches_to_each():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert_clean(at)
    assert at.title[0].value == "Preflight"
    for path in PAGE_PATHS[1:]:
        at.switch_page(path).run()
        assert_clean(at)
        expected = next(p.title for p in PAGES if p.path == path)
        assert at.title[0].value == expected


def test_no_legacy_pages_folder():
    """A pages/ folder beside app.py would be auto-discovered by Streamlit's legacy multipage mode."""
    assert not (ROOT / "pages").exists()


def test_training_page_updates_with_gpu_count_and_reports_bad_tokens():
    at = run_page("views/train.py")
    before = metrics(at)
    assert before["Cost"].startswith("$")
    at.number_input(key="gpus").set_value(4096).run()
    assert_clean(at)
    after = metrics(at)
    assert after["Wall clock"] != before["Wall clock"]
    assert after["Cost"] == before["Cost"]  # same GPU-hours, more GPUs: only the clock moves
    assert len(at.get("plotly_chart")) == 2

    at.text_input(key="tokens-llama-3-8b").set_value("abc").run()
    assert not at.exception
    assert len(at.error) == 1 and "tokens" in at.error[0].value


def test_training_page_published_gpu_hours_implies_mfu():
    at = run_page("views/train.py")
    at.selectbox(key="model").set_value("llama-2-7b").run()
    at.selectbox(key="gpu").set_value("a100-80gb").run()
    at.radio(key="basis").set_value("Published GPU-hours").run()
    assert_clean(at)
    assert at.text_input(key="gpu-hours").value == "184.3K"
    mfu = float(metrics(at)["MFU"].rstrip("%"))
    assert 30 < mfu < 60  # Llama 2 7B: 184,320 A100-hours for 2T tokens


def test_training_page_bare_parameter_count():
    at = run_page("views/train.py")
    at.radio(key="sizing").set_value("Parameter count").run()
    at.text_input(key="params").set_value("70B").run()
    assert_clean(at)
    assert metrics(at)["Total FLOPs"] == "8.40e23"  # 6 · 70e9 · 2e12, no attention term
    at.text_input(key="params").set_value("-3").run()
    assert not at.exception and at.error


def test_memory_page_fits_and_plan_table():
    at = run_page("views/memory.py")
    assert at.success, "llama-3-8b with ZeRO-3 over 8 H100s should fit"
    at.selectbox(key="mem-model").set_value("llama-3.1-405b").run()
    assert_clean(at)
    assert at.warning and "Does not fit" in at.warning[0].value
    at.radio(key="mode").set_value("infer").run()
    assert_clean(at)
    assert metrics(at)["KV cache"] != "0 B"


def test_memory_page_rejects_tp_above_heads():
    at = run_page("views/memory.py")
    at.selectbox(key="mem-model").set_value("gpt2").run()
    at.number_input(key="tp").set_value(64).run()
    assert not at.exception
    assert at.error and "tp" in at.error[0].value


def test_serving_page_reacts_to_prompt_length():
    at = run_page("views/serve.py")
    before = metrics(at)["Prefill latency"]
    at.number_input(key="prompt").set_value(8000).run()
    assert_clean(at)
    assert metrics(at)["Prefill latency"] != before
    at.selectbox(key="serve-model").set_value("llama-3.1-405b").run()
    at.selectbox(key="serve-gpu").set_value("l4").run()
    assert_clean(at)
    assert at.warning and "does not fit" in at.warning[0].value


def test_scaling_page_flops_budget_recovers_chinchilla():
    at = run_page("views/scaling.py")
    at.radio(key="budget-kind").set_value("FLOPs").run()
    assert_clean(at)
    m = metrics(at)
    assert m["Optimal parameters"].endswith("B") and 60 < float(m["Optimal parameters"][:-1]) < 80
    at.text_input(key="budget-flops").set_value("lots").run()
    assert not at.exception and at.error


def test_serving_page_shows_the_engine_numbers_and_offers_downloads():
    from engine.estimate.serving import ServeInput, estimate_serving

    at = run_page("views/serve.py")
    # estimate JSON, by-concurrency CSV, by-GPU CSV (contents: tests/e2e), and since issue 18 the self-host vs
    # API comparison's JSON and CSV
    assert len(at.get("download_button")) == 5
    expected = estimate_serving(ServeInput(model="llama-3-8b", gpu="h100-sxm", prompt_tokens=1000, output_tokens=250,
                                           requests_per_s=10.0, price_usd_per_hour=2.99,
                                           prefill_efficiency=0.6, decode_efficiency=0.8))
    shown = metrics(at)["Decode throughput"]
    assert shown == f"{expected.decode_tokens_per_s:,.0f} tok/s"
    assert metrics(at)["GPUs needed"] == f"{expected.gpus_needed:,}"
    json.dumps(expected.to_dict(), allow_nan=False)


def test_serving_page_shows_memory_bound_and_scheduler_limit_apart():
    """Issue 11, item 1: the page shows what the memory holds and the scheduler cap side by side, and
    runs the figures at the smaller of the two; raising the cap past the memory bound leaves the bound."""
    from engine.estimate.serving import ServeInput, estimate_serving

    at = run_page("views/serve.py")
    at.number_input(key="prompt").set_value(512).run()
    at.number_input(key="output").set_value(256).run()
    assert_clean(at)
    m = metrics(at)
    assert m["Max concurrency (memory)"] == "674" and m["Scheduler limit"] == "256" and m["Concurrency used"] == "256"
    at.number_input(key="max-batch").set_value(2000).run()
    assert_clean(at)
    m = metrics(at)
    expected = estimate_serving(ServeInput(model="llama-3-8b", gpu="h100-sxm", max_batch=2000))
    assert m["Scheduler limit"] == "2,000"
    assert m["Max concurrency (memory)"] == m["Concurrency used"] == f"{expected.max_concurrency:,}"


def test_memory_page_attention_kernel_changes_activations():
    at = run_page("views/memory.py")
    flash = metrics(at)["Activations"]
    at.selectbox(key="attention").set_value("eager").run()
    assert_clean(at)
    eager = metrics(at)["Activations"]
    assert float(eager.split()[0]) > float(flash.split()[0])  # eager stores the a·s² scores


def test_serving_page_latency_assumptions_and_bad_tensor_parallel():
    at = run_page("views/serve.py")
    before = metrics(at)["Time per output token"]
    at.number_input(key="layer-us").set_value(200.0).run()
    assert_clean(at)
    assert metrics(at)["Time per output token"] != before
    at.number_input(key="serve-gpus").set_value(3).run()  # llama-3-8b has 32 heads
    assert not at.exception
    assert at.error and "tp must divide n_heads" in at.error[0].value


def test_architecture_editor_recounts_and_rejects_bad_shapes():
    at = run_page("views/serve.py")
    at.toggle(key="serve-model-edit").set_value(True).run()
    assert_clean(at)
    weights_before = metrics(at)["Weights"]
    at.number_input(key="serve-model-llama-3-8b-layers").set_value(64).run()
    assert_clean(at)
    assert metrics(at)["Weights"] != weights_before
    assert any("parameters, counted from this shape" in c.value for c in at.caption)
    at.number_input(key="serve-model-llama-3-8b-kv").set_value(5).run()  # 32 heads: 5 kv heads cannot group
    assert not at.exception
    assert at.error and "must divide" in at.error[0].value


def test_serving_page_survives_a_context_no_gpu_can_hold():
    at = run_page("views/serve.py")
    at.selectbox(key="serve-model").set_value("deepseek-v3").run()
    at.number_input(key="prompt").set_value(10_000_000).run()
    assert_clean(at)
    assert at.warning and "does not fit" in at.warning[0].value
    assert len(at.get("plotly_chart")) == 2  # no break-even chart: the section says why instead
    assert "Self-hosting cannot be compared here" in at.warning[-1].value
