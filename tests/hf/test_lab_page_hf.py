"""The Model lab page's "Fine-tune a model folder" (AppTest): a tiny folder found under the workspace's models/
fine-tuned with LoRA in its own process to the end; a folder without weights answered with one st.error."""

from __future__ import annotations

import os
import shutil
import signal
import time

from engine import workspace
from engine.store import Registry
from tests.pages.conftest import ROOT, assert_clean, run_page

PAGE = "views/lab.py"


def test_fine_tune_a_model_folder_from_the_page(hf_models):
    folder = workspace.models_dir() / "tiny-qwen2"
    shutil.copytree(hf_models["qwen2"], folder)
    at = run_page(PAGE, timeout=90)
    at.selectbox(key="hf_pick").select(str(folder))
    at.number_input(key="hf_steps").set_value(3)
    at.number_input(key="hf_batch").set_value(2)
    at.number_input(key="hf_context").set_value(32)
    at.selectbox(key="hf_device").select("cpu").run()
    at.button(key="hf_start").click().run()
    assert_clean(at)
    reg = Registry()
    name = at.session_state["lab_run"]
    deadline = time.monotonic() + 150
    try:
        while reg.get_run(name)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the fine-tuning run did not finish in 150 s"
            time.sleep(1.0)
    finally:
        run = reg.get_run(name)
        if run["status"] in ("queued", "running") and run["pid"]:
            os.kill(run["pid"], signal.SIGTERM)
    run = reg.get_run(name)
    assert run["status"] == "finished", run["error"]
    assert run["summary"]["trainable_params"] == run["config"]["estimated_trainable_params"]
    assert (ROOT / PAGE).is_file()
    at.run()
    assert_clean(at)
    assert any("finished" in s.value for s in at.subheader)


def test_a_folder_without_weights_is_one_error(hf_models, tmp_path):
    bad = tmp_path / "noweights"
    shutil.copytree(hf_models["qwen2"], bad)
    (bad / "model.safetensors").unlink()
    at = run_page(PAGE, timeout=90)
    at.text_input(key="hf_folder").input(str(bad)).run()
    at.button(key="hf_start").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"model folder {bad} has no weights (model.safetensors or a sharded "
                                           "model.safetensors.index.json)"]


def test_inference_page_streams_a_model_folder(hf_models):
    folder = workspace.models_dir() / "tiny-llama"
    shutil.copytree(hf_models["llama"], folder)
    at = run_page("views/infer.py", timeout=90)
    at.radio(key="infer_kind").set_value("Model folder (Hugging Face)").run()
    assert_clean(at)
    at.selectbox(key="hfi_pick").select("models/tiny-llama").run()
    assert_clean(at)
    at.number_input(key="hfi_max_new").set_value(6)
    at.button(key="hfi_generate").click().run()
    assert_clean(at)
    assert [m.value for m in at.metric][0] in {str(n) for n in range(7)}
