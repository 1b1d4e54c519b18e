"""Readiness: can we afford the training, how long is the runway, what does serving cost, is there a margin,
how many users break even, is the data ready, does the model work, and how sure are we. From the
founder's own numbers (named scenarios in the workspace) and this workspace's artifacts."""

import json

import streamlit as st

from engine.readiness.assess import assess, incomplete
from engine.readiness.charts import cash_fan, tornado
from engine.readiness.profile import check_scenario_name, profile_errors, profile_from_mapping
from engine.readiness.report import render_html, render_markdown
from engine.readiness.store import ScenarioStore, compare
from ui.access import demo_notice
from ui.currency import current_currency
from ui.readiness import (compare_table, key_figures, load_into_state, plain, profile_form, quantile_table,
                          ranges_editor, show_errors, verdict_cards)
from ui.widgets import run_engine

st.title("Readiness")
st.caption("Runway, margin and break-even from your own numbers, verdicts from this workspace's data checks, "
           "runs and calibrations, and how sure each figure is. Edit the profile: everything below follows.")
demo = demo_notice("saving, copying, renaming and deleting scenarios")
store = ScenarioStore()


def _on_pick() -> None:
    """Scenario picker callback (runs before the script): fill this session's form with the scenario."""
    picked = st.session_state.get("rd_pick") or ""
    if picked:
        load_into_state(store.get(picked).profile)
        store.mark_used(picked)  # the Overview starts from the scenario last opened
    st.session_state["rd_current"] = picked or None
    st.session_state["rd_name"] = picked or "base"


# ---- scenarios ---------------------------------------------------------------------------------------
names = store.names()
pending = st.session_state.pop("rd_pending", None)  # set by save/rename/delete on the previous run
if pending is not None:
    st.session_state["rd_pick"] = pending
    st.session_state["rd_current"] = pending or None
    st.session_state["rd_name"] = pending or "base"
if st.session_state.get("rd_pick") not in ["", *names]:
    st.session_state["rd_pick"] = ""
    st.session_state["rd_current"] = None
current = st.session_state.get("rd_current")
s1, s2 = st.columns([2, 3])
with s1:
    st.selectbox("Scenario", ["", *names], key="rd_pick", on_change=_on_pick,
                 format_func=lambda n: n or "(unsaved: the example)")
with s2:
    st.session_state.setdefault("rd_name", current or "base")
    name = st.text_input("Scenario name", key="rd_name", max_chars=100, help="letters, digits, '.', '_' and '-'",
                         disabled=demo)
    b = st.columns(4)
    save = b[0].button("Save", key="rd_save", disabled=demo, help="save the form under this name")
    copy = b[1].button("Copy", key="rd_copy", disabled=demo or not current, help="save the form as a new scenario")
    rename = b[2].button("Rename", key="rd_rename", disabled=demo or not current, help="rename the picked scenario")
    delete = b[3].button("Delete", key="rd_delete", disabled=demo or not current, help="delete the picked scenario")

# ---- the profile -------------------------------------------------------------------------------------
with st.expander("Company profile", expanded=True):
    data, holders = profile_form(disabled=False)
with st.expander("Uncertainty ranges: factors on your values (defaults and sources: engine/catalog/uncertainty.toml)"):
    ranges = ranges_editor()
errors = profile_errors(data)
show_errors(errors, holders)

if save or copy or rename or delete:
    if delete:
        run_engine(store.delete, current)
        st.session_state["rd_pending"] = ""
    else:
        target = run_engine(check_scenario_name, name)
        if rename:
            run_engine(store.rename, current, target)
        elif errors:
            st.error("Fix the profile before saving it.")
            st.stop()
        else:
            if copy and target == current:
                target = f"{current}-copy"
            run_engine(store.save, target, profile_from_mapping(data), overwrite=not copy)
        st.session_state["rd_pending"] = target
    st.rerun()

if errors:
    st.warning("The readiness figures wait for a complete profile: fix the fields marked above.")
    st.subheader("Verdicts")
    verdict_cards([a.to_dict() for a in incomplete(errors)])
    st.stop()

profile = profile_from_mapping(data)
scenario = st.session_state.get("rd_current") or "unsaved"
result = run_engine(assess, profile, scenario=scenario, ranges=ranges, currency=current_currency()).to_dict()

# ---- verdicts and figures ----------------------------------------------------------------------------
st.subheader("Verdicts")
verdict_cards(result["areas"])
if result.get("training_cost_usd") is None:
    st.stop()
st.subheader("Key figures (first month)")
key_figures(result)
st.caption(plain(f"Serving speed from the {result['serving_speed_source']}; servers sized for "
                 f"{result['assumptions']['peak_to_average']:g}× the average load; a month is 730 hours; training "
                 "is paid at month 0."))

st.subheader(f"How sure: P10 / P50 / P90 over {result['uncertainty']['samples']:,} samples")
st.dataframe(quantile_table(result), hide_index=True, width="stretch")
unc = result["uncertainty"]
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(tornado(unc["tornado"], current_currency()), width="stretch", key="rd_tornado")
with c2:
    st.plotly_chart(cash_fan(unc["fan"], unc["cash_out_probability"], current_currency()), width="stretch", key="rd_fan")
# ---- report ------------------------------------------------------------------------------------------
st.subheader("Report")
d = st.columns(3)
stem = f"readiness-{scenario}"
d[0].download_button("Report (HTML, prints to PDF)", lambda: render_html(result, current_currency()), file_name=f"{stem}.html",
                     mime="text/html", on_click="ignore", key="rd_dl_html")
d[1].download_button("Report (Markdown)", render_markdown(result, current_currency()), file_name=f"{stem}.md", mime="text/markdown",
                     on_click="ignore", key="rd_dl_md")
d[2].download_button("Report (JSON)", json.dumps(result, indent=2, allow_nan=False), file_name=f"{stem}.json",
                     mime="application/json", on_click="ignore", key="rd_dl_json")

# ---- compare -----------------------------------------------------------------------------------------
if len(names) >= 2:
    st.subheader("Compare scenarios")
    chosen = st.multiselect("Scenarios", names, default=names[:3], key="rd_compare")
    if chosen:
        results = {n: run_engine(assess, store.get(n).profile, scenario=n, samples=200, currency=current_currency()).to_dict() for n in chosen}
        st.dataframe(compare_table(compare(results)), width="stretch")
