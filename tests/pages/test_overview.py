"""The Overview starts from the founder's plan (issue 18): the saved scenario last used, else the usual
plan (fine-tune an open model on tens of millions of tokens, serve a few thousand users)."""

from __future__ import annotations

from engine.readiness.profile import TrainingPlan, example_profile, with_changes
from engine.readiness.store import ScenarioStore
from tests.pages.conftest import metrics, run_page


def test_overview_without_a_scenario_shows_the_usual_plan_not_a_pretraining():
    at = run_page("views/home.py")
    m = metrics(at)
    assert "Training plan" in m
    assert any("QLoRA of llama-3-8b on 40M tokens" in c.value for c in at.caption)
    assert not any("15T" in k or "Train on" in k for k in m)
    assert any("No scenario saved yet" in c.value for c in at.caption)
    assert m["Serving a month (API)"].startswith("$")
    assert [t.value for t in at.markdown if t.value.startswith("**")][:5]  # the verdict cards are drawn


def test_overview_starts_from_the_most_recently_used_saved_scenario():
    store = ScenarioStore()
    base = with_changes(example_profile(), training=[TrainingPlan(model="mistral-7b", tokens=20e6, gpu="l40s", gpus=1,
                                                                  method="lora").to_dict()])
    store.save("acme-lora", base)
    store.save("acme-self-host", with_changes(base, daily_active_users=800))
    store.mark_used("acme-lora")  # opened last on the Readiness page
    at = run_page("views/home.py")
    assert at.subheader[0].value == "Your plan: scenario acme\\-lora"
    m = metrics(at)
    assert any("LoRA of mistral-7b on 20M tokens" in c.value for c in at.caption)
    assert m["Serving per month (self-hosted)"].startswith("$")
    assert m["Runway after training"].endswith("months")


def test_readiness_page_serves_through_an_api():
    at = run_page("views/readiness.py")
    at.selectbox(key="rd_serving_api").set_value("deepseek/deepseek-chat").run()
    assert not at.exception and not at.error
    assert metrics(at)["Serving GPUs, month 1"] == "0"
    assert any("cheaper at month 12" in c.value for c in at.caption)
