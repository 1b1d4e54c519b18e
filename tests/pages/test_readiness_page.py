"""The readiness page: empty and populated workspaces, per-field messages for bad input, scenarios
(save, copy, rename, compare, delete), demo mode on every page, and the password gate."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.readiness.profile import example_profile
from engine.readiness.store import ScenarioStore
from engine.store import Registry
from engine.workspace import home
from tests.pages.conftest import ROOT, assert_clean, metrics, run_page
from ui.navigation import PAGES

PAGE = "views/readiness.py"


def _statuses(at) -> list[str]:
    """The verdict badges (st.badge renders as ':color-badge[:icon: status]' markdown)."""
    return [m.value.split(": ", 1)[1].rstrip("]") for m in at.markdown if "-badge[" in m.value]


def test_empty_workspace_shows_the_example_figures_and_no_data_verdicts():
    assert not any(home().iterdir())  # a first-time user's workspace
    at = run_page(PAGE)
    m = metrics(at)
    assert m["Training cost"].startswith("$") and m["Serving GPUs, month 1"] == "1"
    assert m["Runway after training"].endswith("months")
    assert _statuses(at) == ["ready", "ready", "no data yet", "no data yet", "no data yet"]
    captions = " ".join(c.value for c in at.caption)
    assert "No dataset checked yet" in captions and "No model trained yet" in captions
    assert "No measured latency yet" in captions
    assert len(at.get("plotly_chart")) == 2 and len(at.get("download_button")) == 3


def test_populated_workspace_changes_the_verdicts(tmp_path):
    from engine.datacheck import job

    csv = tmp_path / "d.csv"
    csv.write_text("id,x\n" + "".join(f"{i % 5},{i % 5}\n" for i in range(20)))
    job.start_check({"path": str(csv)}, inline=True)
    reg = Registry()
    reg.create_run("r1", {"preset": "tiny"}, tmp_path / "r1")
    reg.log_metrics("r1", 1, val_loss=4.0)
    reg.set_status("r1", "finished", summary={"val_loss": 2.0})
    at = run_page(PAGE)
    captions = " ".join(c.value for c in at.caption)
    assert "d.csv scores" in captions and "The latest run r1" in captions
    assert "No dataset checked yet" not in captions
    assert _statuses(at)[3] == "ready"  # the model area: validation loss 4.0 -> 2.0


def test_an_input_change_reruns_the_figures_and_bad_input_is_marked_at_its_field():
    at = run_page(PAGE)
    before = metrics(at)["Serving GPUs, month 1"]
    at.number_input(key="rd_dau").set_value(2_000_000).run()
    assert_clean(at)
    assert metrics(at)["Serving GPUs, month 1"] != before
    at.number_input(key="rd_dau").set_value(0).run()
    assert not at.exception
    assert any("daily_active_users must be > 0" in e.value for e in at.error)
    assert not at.metric  # no figures built on a bad input
    captions = " ".join(c.value for c in at.caption)
    assert "The profile needs fixing first \\(daily\\_active\\_users\\)" in captions  # a verdict saying what is missing
    at.number_input(key="rd_dau").set_value(5000)
    at.number_input(key="rd_growth").set_value(10_000).run()
    assert any("monthly_growth" in e.value for e in at.error)
    at.number_input(key="rd_growth").set_value(10)
    at.number_input(key="rd_price").set_value(0.0).run()
    assert_clean(at)  # a price below cost is a negative margin, not an error
    assert metrics(at)["Gross margin per request"].startswith("-$")


def test_scenarios_save_copy_rename_compare_delete():
    at = run_page(PAGE)
    at.text_input(key="rd_name").set_value("base").run()
    at.button(key="rd_save").click().run()
    assert_clean(at)
    assert ScenarioStore().names() == ["base"]
    at.number_input(key="rd_dau").set_value(50_000).run()
    at.text_input(key="rd_name").set_value("bull").run()
    at.button(key="rd_copy").click().run()
    assert_clean(at)
    assert ScenarioStore().names() == ["base", "bull"]
    assert ScenarioStore().get("bull").profile.daily_active_users == 50_000
    at.selectbox(key="rd_pick").set_value("base").run()
    assert at.number_input(key="rd_dau").value == 5000  # the form follows the picked scenario
    assert len(at.dataframe) >= 2  # quantiles and the comparison table
    at.text_input(key="rd_name").set_value("../evil name").run()
    at.button(key="rd_rename").click().run()
    assert not at.exception and any("may use only letters" in e.value for e in at.error)
    at.text_input(key="rd_name").set_value("bear").run()
    at.button(key="rd_rename").click().run()
    assert_clean(at)
    assert ScenarioStore().names() == ["bear", "bull"]
    at.selectbox(key="rd_pick").set_value("bull").run()
    at.button(key="rd_delete").click().run()
    assert_clean(at)
    assert ScenarioStore().names() == ["bear"]


def test_demo_mode_hides_writes_on_the_page_and_the_engine_refuses(monkeypatch):
    ScenarioStore().save("base", example_profile())
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    at = run_page(PAGE)
    assert any("read-only demo" in i.value for i in at.info)
    for key in ("rd_save", "rd_copy", "rd_rename", "rd_delete"):
        assert at.button(key=key).disabled
    assert metrics(at)["Training cost"].startswith("$")  # estimates still work


def test_demo_mode_on_the_lab_and_data_pages(monkeypatch):
    Registry().create_run("r1", {"preset": "tiny"}, home() / "runs" / "r1")
    Registry().set_status("r1", "stopped")
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    lab = run_page("views/lab.py")
    assert any("read-only demo" in i.value for i in lab.info)
    for key in ("lab_start", "lab_cal_start", "lab_resume", "lab_delete"):
        assert lab.button(key=key).disabled, key
    data = run_page("views/data.py")
    assert any("read-only demo" in i.value for i in data.info)
    assert not data.get("file_uploader") and not (home() / "checks").exists()


@pytest.mark.parametrize("path", [info.path for info in PAGES])
def test_every_page_loads_in_demo_mode_with_an_empty_workspace(monkeypatch, path):
    monkeypatch.setenv("PREFLIGHT_DEMO", "1")
    assert run_page(path).title


def test_password_gate(monkeypatch):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = {"password": "correct horse"}
    at.run()
    assert_clean(at)
    assert not at.metric and at.text_input(key="_preflight_password")
    monkeypatch.setattr("ui.access.WRONG_PASSWORD_DELAY_S", 0.0)
    at.text_input(key="_preflight_password").set_value("wrong")
    at.button[0].click().run()
    assert any(e.value == "Wrong password." for e in at.error) and not at.metric
    at.text_input(key="_preflight_password").set_value("correct horse")
    at.button[0].click().run()
    assert_clean(at)
    assert at.title[0].value == "Preflight" and metrics(at)  # the Overview


def test_no_password_configured_means_no_gate():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert_clean(at)
    assert metrics(at)


def test_no_page_renders_html_from_text():
    """No page or ui helper uses unsafe_allow_html (so no user text can become HTML)."""
    offenders = [str(p.relative_to(ROOT)) for folder in ("views", "ui") for p in (ROOT / folder).glob("*.py")
                 if "unsafe_allow_html=True" in p.read_text() or "st.html(" in p.read_text()]
    assert offenders == []


def test_ranges_are_offered_for_editing_with_the_catalog_defaults():
    """The page's range editor starts from the catalog; what it returns goes to assess(ranges=...),
    where collapsing every range to its point value collapses the quantiles (AppTest cannot type into
    a data editor, so the second half calls the engine as the page does)."""
    from engine.readiness.assess import assess
    from engine.readiness.montecarlo import FACTORS, Range, default_ranges

    at = run_page(PAGE)
    editor = next(d.value for d in at.dataframe if "most likely" in d.value.columns)
    assert set(editor["key"]) == set(FACTORS)
    mfu = editor.set_index("key").loc["mfu"]
    assert (mfu["low"], mfu["most likely"], mfu["high"]) == (default_ranges()["mfu"].low, 1.0, default_ranges()["mfu"].high)
    point = {k: Range(k, r.label, "triangular", 1.0, 1.0, 1.0) for k, r in default_ranges().items()}
    q = assess(example_profile(), ranges=point, samples=200).to_dict()["quantiles"]["training_cost_usd"]
    assert q["p10"] == q["p50"] == q["p90"]
    wide = assess(example_profile(), samples=200).to_dict()["quantiles"]["training_cost_usd"]
    assert wide["p10"] < wide["p90"]
