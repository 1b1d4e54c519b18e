"""Profiles: bad input gets one specific line per field; files (TOML, JSON) load with scenarios;
scenarios live in the registry's database (create, copy, rename, compare, delete; migration)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from engine.errors import ValidationError
from engine.readiness.profile import (check_scenario_name, example_profile, load_profile_file, profile_errors,
                                      profile_from_mapping)
from engine.readiness.store import SCHEMA_KEY, ScenarioStore, compare
from engine.store import Registry


def _data(**changes):
    d = example_profile().to_dict()
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


@pytest.mark.parametrize("changes, field, words", [
    ({"daily_active_users": 0}, "daily_active_users", "must be > 0"),
    ({"cash_usd": -1}, "cash_usd", "must be >= 0"),
    ({"monthly_growth": 100}, "monthly_growth", "<= 1"),
    ({"requests_per_user_per_day": "many"}, "requests_per_user_per_day", "must be a number"),
    ({"cash_usd": True}, "cash_usd", "must be a number"),
    ({"surprise": 1}, "surprise", "unknown key"),
    ({"serving_gpu": "tpu-v9"}, "serving_gpu", "unknown serving_gpu"),
    ({"price_per_request_usd": 0.01}, "price", "give one price"),
    ({"subscription_usd_per_user_month": None}, "price", "a price is required"),
    ({"training": [{"model": "llama-3-8b", "tokens": "1T", "gpu": "h100-sxm"}]}, "training", "gpus is required"),
    ({"training": [{"model": "llama-3-8b", "tokens": "1T", "gpu": "h100-sxm", "gpus": 8, "method": "dpo"}]},
     "training", "is not one of pretrain, full, lora, qlora"),
    ({"training": [{"model": "llama-3-8b", "tokens": "1T", "gpu": "h100-sxm", "gpus": 8, "colour": 1}]},
     "training", "unknown key 'colour'"),
])
def test_bad_values_get_a_message_next_to_their_field(changes, field, words):
    data = _data(**changes)
    errors = profile_errors(data)
    assert field in errors and words in errors[field], errors
    with pytest.raises(ValidationError) as exc:
        profile_from_mapping(data)
    assert "\n" not in str(exc.value)


def test_a_price_below_cost_is_valid():
    assert profile_from_mapping(_data(subscription_usd_per_user_month=0.0)).pricing == ("subscription_usd_per_user_month", 0.0)


def test_quantities_with_suffixes_and_round_trip():
    p = profile_from_mapping(_data(cash_usd="2M", training=[{"model": "llama-3-8b", "tokens": "1.5T", "gpu": "H100-SXM", "gpus": 8}]))
    assert p.cash_usd == 2e6 and p.training[0].tokens == 1.5e12 and p.training[0].gpu == "h100-sxm"
    assert p.training[0].method == "pretrain"
    assert profile_from_mapping(p.to_dict()) == p


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "a b", "", "..", "<b>x</b>"])
def test_scenario_names_with_path_characters_are_refused(name):
    with pytest.raises(ValidationError):
        check_scenario_name(name)
    assert check_scenario_name("slow-growth_2.v1") == "slow-growth_2.v1"


def test_toml_and_json_files_with_scenarios(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('cash_usd = "2M"\nmonthly_burn_usd = 1e5\ndaily_active_users = 100\nmonthly_growth = 0.1\n'
                    'requests_per_user_per_day = 5\nprompt_tokens = 500\noutput_tokens = 200\nserving_model = "llama-3-8b"\n'
                    'serving_gpu = "h100-sxm"\np95_latency_s = 3\nprice_per_request_usd = 0.01\n'
                    '[[training]]\nmodel = "llama-3-8b"\ntokens = "100B"\ngpu = "h100-sxm"\ngpus = 8\n'
                    '[scenarios.pessimistic]\ndaily_active_users = 10\n')
    base, named = load_profile_file(toml)
    assert base.daily_active_users == 100 and named["pessimistic"].daily_active_users == 10
    js = tmp_path / "c.json"
    js.write_text(json.dumps(base.to_dict()))
    assert load_profile_file(js)[0] == base
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**base.to_dict(), "cash": 5}))
    with pytest.raises(ValidationError, match="bad.json: unknown key 'cash'"):
        load_profile_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("cash_usd = = 1")
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_profile_file(broken)
    bad_name = tmp_path / "n.toml"
    bad_name.write_text(toml.read_text().replace("[scenarios.pessimistic]", '[scenarios."../x"]'))
    with pytest.raises(ValidationError, match="scenario name"):
        load_profile_file(bad_name)


def test_store_create_copy_rename_compare_delete():
    store = ScenarioStore()
    p = example_profile()
    store.save("base", p)
    store.copy("base", "optimistic")
    with pytest.raises(ValidationError, match="exists already"):
        store.copy("base", "optimistic")
    store.save("optimistic", profile_from_mapping({**_data(), "daily_active_users": 50_000}))
    store.rename("optimistic", "bull")
    assert store.names() == ["base", "bull"]
    assert store.get("bull").profile.daily_active_users == 50_000 and store.get("base").profile == p
    with pytest.raises(ValidationError, match="may use only"):
        store.save("../../x", p)
    with pytest.raises(ValidationError, match="no scenario"):
        store.rename("nope", "x")
    rows = compare({"base": {"training_cost_usd": 1.0}, "bull": {"training_cost_usd": 2.0}})
    assert rows[0] == {"figure": "training_cost_usd", "base": 1.0, "bull": 2.0}
    store.delete("bull")
    assert store.names() == ["base"]
    with pytest.raises(ValidationError, match="no scenario"):
        store.delete("bull")


def test_an_older_registry_is_migrated():
    reg = Registry()  # a registry from before scenarios: run tables only
    with sqlite3.connect(reg.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone() is None
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'scenarios'").fetchone() is None
    reg.create_run("kept", {}, reg.path.parent / "runs" / "kept")
    ScenarioStore().save("s1", example_profile())
    with sqlite3.connect(reg.path) as conn:
        # version 2 since issue 18 (the ``used`` column, for the Overview's most recently used scenario)
        assert conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()[0] == "2"
    assert Registry().get_run("kept")["name"] == "kept" and ScenarioStore().names() == ["s1"]


def test_a_version_1_scenarios_table_gains_used_and_the_most_recent_is_found():
    reg = Registry()
    with sqlite3.connect(reg.path) as conn:  # the table as version 1 made it, with one scenario
        conn.execute("CREATE TABLE scenarios (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
                     "profile TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)")
        conn.execute("INSERT INTO scenarios(name, profile, created, updated) VALUES (?, ?, 1, 1)",
                     ("old", json.dumps(example_profile().to_dict())))
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, '1')", (SCHEMA_KEY,))
    store = ScenarioStore()
    assert store.most_recent().name == "old"
    store.save("newer", example_profile())
    assert store.most_recent().name == "newer"
    store.mark_used("old")
    assert store.most_recent().name == "old"
