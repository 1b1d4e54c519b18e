"""Runner: score formula, samples' planted counts, progress, estimate link, check selection."""

from __future__ import annotations

import json

import pytest

from engine.datacheck.base import Finding
from engine.datacheck.checks import CHECKS, MODULES
from engine.datacheck.runner import CheckInput, estimate_for_tokens, run_checks, score_findings
from engine.datacheck.samples import SAMPLES, write_sample
from engine.errors import ValidationError

from .conftest import by_id, check


def f(severity, share, cid="x", **kw):
    return Finding(id=cid, severity=severity, count=1, title="t", fix="f", details={"share": share}, **kw)


def test_score_formula():
    assert score_findings([], 100)[0] == 100
    assert score_findings([f("info", 1.0)], 100)[0] == 100
    assert score_findings([f("high", 0.0)], 100)[0] == 95            # 20 * 0.25
    assert score_findings([f("high", 0.1)], 100)[0] == 80            # full weight at 10%
    assert score_findings([f("medium", 0.05)], 100)[0] == 100 - round(10 * (0.25 + 0.75 * 0.5))
    # one check's findings cost at most the weight of their worst severity
    assert score_findings([f("low", 1.0, column=str(i)) for i in range(10)], 100)[0] == 96
    # a critical finding caps the score at 40
    assert score_findings([f("critical", 0.0)], 100)[0] == 40
    # share falls back to rows_total / rows
    g = Finding(id="y", severity="high", count=5, title="t", fix="f", rows=list(range(5)))
    assert score_findings([g], 1000)[0] == round(100 - 20 * (0.25 + 0.75 * 0.05))


def test_registry_lists_every_module():
    ids = [c.id for c in CHECKS]
    for cid in ("missing_values", "duplicate_rows", "constant_column", "mixed_types", "outliers", "schema",
                "label_imbalance", "conflicting_labels", "train_test_leakage", "drift"):
        assert cid in ids
    assert set(ids) <= set(MODULES)


def test_a_listed_check_module_that_is_missing_fails_loudly(monkeypatch):
    """A report must never quietly lack a check: a listed module that cannot be imported raises."""
    import engine.datacheck.checks as registry

    assert {c.__module__.rsplit(".", 1)[1] for c in CHECKS} == set(MODULES)  # every listed module contributes
    monkeypatch.setattr(registry, "MODULES", MODULES + ("no_such_check",))
    with pytest.raises(ModuleNotFoundError, match="no_such_check"):
        registry.load_checks()


def test_samples_report_their_planted_problems(tmp_path):
    train = write_sample("support_tickets", tmp_path)
    test = write_sample("support_tickets_test", tmp_path)
    report = check(train, test_path=test)
    plant = SAMPLES["support_tickets"]["planted"]
    assert by_id(report, "duplicate_rows")[0].count == plant["duplicate_rows"]
    assert by_id(report, "conflicting_labels")[0].count == plant["conflicting_labels"]
    assert by_id(report, "label_imbalance")[0].details["under_represented"] == ["legal"]
    (leak,) = by_id(report, "train_test_leakage")
    assert leak.count == SAMPLES["support_tickets_test"]["planted"]["train_test_leakage"]
    assert leak.details["exact"] == SAMPLES["support_tickets_test"]["planted"]["train_test_leakage_exact"]
    assert 0 <= report.score < 80

    cust = check(write_sample("customers", tmp_path))
    plant = SAMPLES["customers"]["planted"]
    for cid in ("missing_values", "mixed_types", "outliers"):
        assert sum(x.count for x in by_id(cust, cid)) == plant[cid], cid
    assert len(by_id(cust, "constant_column")) == plant["constant_column"]

    clean = check(write_sample("clean_reviews", tmp_path))
    assert [x.severity for x in clean.findings if x.severity != "info"] == []
    assert clean.score == 100


def test_report_dict_contract_and_progress(tmp_path):
    seen = []
    report = run_checks(CheckInput(path=write_sample("support_tickets", tmp_path), chunk_rows=100),
                        progress=lambda frac, msg: seen.append((frac, msg)))
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    for key in ("score", "rows", "columns", "tokens", "findings", "weights", "checks_run", "charts", "elapsed_s",
                "estimate", "text_col", "label_col", "format", "test_rows"):
        assert key in d
    assert d["rows"] == 499 and d["columns"] == 4
    fracs = [s[0] for s in seen]
    assert fracs == sorted(fracs) and fracs[0] == 0.0 and fracs[-1] == 1.0 and len(seen) >= 5
    order = [("critical", "high", "medium", "low", "info").index(x["severity"]) for x in d["findings"]]
    assert order == sorted(order)
    for x in d["findings"]:
        assert {"id", "severity", "count", "rows", "examples", "fix"} <= set(x)
    assert d["charts"]["label_counts"]["legal"] == 6
    assert sum(d["charts"]["text_length_hist"]["counts"]) == 499


def test_estimate_link():
    assert estimate_for_tokens(None) is None and estimate_for_tokens(0) is None
    e = estimate_for_tokens(2e10)
    assert e["params"] == pytest.approx(1e9) and e["flops"] == pytest.approx(6 * 1e9 * 2e10)
    assert e["gpu"] == "h100-sxm" and e["cost_usd"] > 0 and "compute-optimal" in e["sentence"]


def test_tokens_feed_the_estimate(tmp_path):
    report = check(write_sample("clean_reviews", tmp_path))
    if report.tokens is None:
        pytest.skip("the tokens check is not installed")
    assert report.estimate["tokens"] == report.tokens["total"]


def test_bad_inputs(tmp_path):
    path = write_sample("customers", tmp_path)
    with pytest.raises(ValidationError, match="unknown check"):
        run_checks(CheckInput(path=path, checks=("nope",)))
    with pytest.raises(ValidationError, match="text column 'body' not found; columns: 'customer_id'"):
        run_checks(CheckInput(path=path, text_col="body"))
    with pytest.raises(ValidationError, match="near-dup threshold"):
        run_checks(CheckInput(path=path, near_dup_threshold=1.5))
    other = tmp_path / "other.csv"
    other.write_text("x,y\n1,2\n")
    with pytest.raises(ValidationError, match="test file has no label column"):
        run_checks(CheckInput(path=path, label_col="plan", test_path=other))
