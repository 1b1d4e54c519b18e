"""Bring your own model in a real browser: on the Serving page, turn on "Use a config.json", paste
Qwen2.5-7B's config.json and see its weights and its cost per million tokens. See conftest.py for the
harness."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from engine.catalog import hf_config_rows
from engine.units import format_bytes

if TYPE_CHECKING:
    from conftest import AppPage

pytestmark = pytest.mark.e2e

QWEN = next(row["config"] for row in hf_config_rows() if row["id"] == "qwen2.5-7b")


def test_paste_a_qwen_config_on_the_serving_page(app: AppPage) -> None:
    from playwright.sync_api import expect

    app.goto("serve")
    app.assert_no_exceptions()
    before = app.metric_value("Weights")
    app.rerun_after(lambda: app.page.get_by_text("Use a config.json", exact=True).click())
    area = app.page.get_by_test_id("stTextArea").locator("textarea")
    expect(area.first).to_be_visible()
    app.rerun_after(lambda: (area.first.fill(json.dumps(QWEN)), area.first.press("Control+Enter")))
    app.assert_no_exceptions()
    weights = app.metric_value("Weights")
    assert weights == format_bytes(7_615_616_512 * 2) and weights != before  # bf16 weights of Qwen2.5-7B
    assert app.metric_value("Cost / M output tokens").startswith("$")
    expect(app.page.get_by_text("7.616B parameters", exact=False).first).to_be_visible()
