"""The fine-tuning page answers the founder's question (fit, time, cost, the cheapest GPU), reruns fast,
reports bad input with one st.error line; the data page shows the fine-tuning figure beside the
compute-optimal one."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from engine.catalog import gpus
from tests.pages.conftest import ROOT, assert_clean, metrics, run_page


def test_page_answers_qlora_llama3_8b_on_one_24gb_gpu():
    at = run_page("views/finetune.py")
    shown = metrics(at)
    assert shown["Fits"] == "yes" and shown["Trainable parameters"] == "41.9M"
    assert shown["Cost"].startswith("$")
    assert "Yes." in at.success[0].value and "40M tokens" in at.success[0].value
    assert any("Cheapest for QLoRA" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3  # the memory breakdown of this run, memory by GPU, cost vs time
    table = at.dataframe[0].value
    assert list(table["gpu"]) == list(gpus())  # every catalog GPU, catalog order
    assert {"full gpus", "lora cost (USD)", "qlora hours"} <= set(table.columns)
    labels = [b.label for b in at.get("download_button")]
    assert any("JSON" in x for x in labels) and any("CSV" in x for x in labels)


def test_full_fine_tune_of_7b_does_not_fit_a_24gb_card_and_reruns_fast():
    at = run_page("views/finetune.py")
    at.selectbox(key="ft-model").set_value("llama-2-7b").run()
    started = time.perf_counter()
    at.radio(key="ft-method").set_value("full").run()
    elapsed = time.perf_counter() - started
    assert_clean(at)
    assert metrics(at)["Fits"] == "no" and "No." in at.warning[0].value
    assert elapsed < 3.0, elapsed  # ~0.3 s on an idle core (docs/BENCHMARKS.md); slack for a loaded machine


def test_stack_choice_changes_the_longest_context_and_shows_the_breakdown_and_table():
    at = run_page("views/finetune.py")
    hf = int(metrics(at)["Longest sequence that fits"].replace(",", ""))
    longest = at.dataframe[1].value
    assert list(longest["gpu"]) == list(gpus())
    assert {"QLoRA · Hugging Face + PEFT", "QLoRA · Unsloth", "Full fine-tune · torchtune"} <= set(longest.columns)
    assert longest["Full fine-tune · Unsloth"].isna().all()  # Unsloth's full fine-tuning is not modelled
    row = longest[longest["gpu"] == "rtx-4090"].iloc[0]
    assert int(row["QLoRA · Hugging Face + PEFT"]) == hf  # the table and the headline are the same estimate
    at.selectbox(key="ft-stack").set_value("unsloth").run()
    assert_clean(at)
    unsloth = int(metrics(at)["Longest sequence that fits"].replace(",", ""))
    assert unsloth > 3 * hf  # chunked (cut) cross-entropy + offloaded checkpoints
    assert int(row["QLoRA · Unsloth"]) == unsloth
    breakdown = at.get("plotly_chart")[0]
    assert breakdown.key == "ft-breakdown"
    at.radio(key="ft-method").set_value("full").run()
    assert not at.exception and len(at.error) == 1 and "supports lora, qlora" in at.error[0].value


def test_bad_tokens_and_rank_are_one_error_line():
    at = run_page("views/finetune.py")
    at.text_input(key="ft-tokens").set_value("lots").run()
    assert not at.exception and len(at.error) == 1 and "tokens" in at.error[0].value
    at.text_input(key="ft-tokens").set_value("40M").run()
    at.number_input(key="ft-rank").set_value(5000).run()
    assert not at.exception and len(at.error) == 1 and "rank" in at.error[0].value


def test_data_page_shows_the_fine_tuning_figure_beside_compute_optimal():
    at = AppTest.from_file(str(ROOT / "views/data.py"), default_timeout=120)
    at.run()
    assert_clean(at)
    infos = [i.value for i in at.info]
    assert any("compute-optimal" in x for x in infos), infos
    assert any(x.startswith("Fine-tuning Llama 3 8B with QLoRA on these") for x in infos), infos
    at.selectbox(key="dc-ft-method").set_value("full").run()
    assert_clean(at)
    assert any(x.startswith("Fine-tuning Llama 3 8B in full") for x in (i.value for i in at.info))
