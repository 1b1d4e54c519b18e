"""The model picker's "Use a config.json": a pasted config drives the page's estimate, a bad one is one
st.error line, and a saved one is a workspace model the pickers and lookups then find."""

from __future__ import annotations

import json

from engine.catalog import hf_config_rows
from engine.estimate import models as model_specs
from engine.units import format_bytes
from tests.pages.conftest import assert_clean, metrics, run_page

QWEN = next(row["config"] for row in hf_config_rows() if row["id"] == "qwen2.5-7b")


def test_pasted_config_drives_the_serving_page_and_saves_into_the_workspace():
    at = run_page("views/serve.py")
    at.toggle(key="serve-model-hf").set_value(True).run()
    assert_clean(at)
    at.text_area(key="serve-model-hf-paste").set_value(json.dumps(QWEN)).run()
    assert_clean(at)
    shown = metrics(at)
    assert shown["Weights"] == format_bytes(7_615_616_512 * 2)  # bf16
    assert shown["Cost / M output tokens"].startswith("$")
    assert any("7.616B parameters" in c.value for c in at.caption)
    at.text_input(key="serve-model-hf-name").set_value("our-qwen").run()
    at.button(key="serve-model-hf-save").click().run()
    assert_clean(at)
    assert "our-qwen" in at.success[0].value
    assert model_specs.get_model("our-qwen").params_total == 7_615_616_512
    assert "our-qwen" in model_specs.model_ids()
    again = run_page("views/finetune.py")  # the fine-tuning page's picker lists the saved model
    assert "our-qwen · 7.62B · saved" in again.selectbox(key="ft-model").options
    again.selectbox(key="ft-model").set_value("our-qwen").run()
    assert_clean(again)


def test_bad_pasted_configs_are_one_error_line():
    at = run_page("views/memory.py")
    at.toggle(key="mem-model-hf").set_value(True).run()
    for text, message in (('{"model_type": "bert"}', "not a decoder language model"), ("{oops", "not valid JSON"),
                          ('{"model_type": "llama", "hidden_size": 8}', "missing")):
        at.text_area(key="mem-model-hf-paste").set_value(text).run()
        assert not at.exception and len(at.error) == 1 and message in at.error[0].value


def test_editor_keeps_a_given_head_dim_until_the_shape_changes():
    """Qwen3-4B's head_dim (128, not 2560 / 32): opening the editor leaves its count as it was."""
    at = run_page("views/memory.py")
    at.selectbox(key="mem-model").set_value("qwen3-4b").run()
    at.toggle(key="mem-model-edit").set_value(True).run()
    assert_clean(at)
    spec = model_specs.get_model("qwen3-4b")
    assert any(f"{spec.params_total / 1e9:.3f}B parameters" in c.value for c in at.caption)



def test_uploaded_config_on_the_fine_tuning_page():
    """An uploaded Qwen3-30B-A3B config.json: the page counts its total parameters; a file over 1 MB is refused."""
    moe = next(row["config"] for row in hf_config_rows() if row["id"] == "qwen3-30b-a3b")
    at = run_page("views/finetune.py")
    at.toggle(key="ft-model-hf").set_value(True).run()
    at.file_uploader(key="ft-model-hf-upload").set_value(("config.json", json.dumps(moe).encode(), "application/json")).run()
    assert_clean(at)
    assert any("30.53B parameters, 3.353B active" in c.value for c in at.caption)
    assert metrics(at)["Fits"] in ("yes", "no")
    big = json.dumps({**moe, "pad": "x" * 1_000_001}).encode()
    at.file_uploader(key="ft-model-hf-upload").set_value(("config.json", big, "application/json")).run()
    assert not at.exception and len(at.error) == 1 and "at most 1,000,000" in at.error[0].value
