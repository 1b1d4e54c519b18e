"""The data-checks page in AppTest: samples, uploads (small: checked inline; large: a background
worker the page polls), bad files answered with st.error, and reuse of earlier uploads."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from tests.pages.conftest import ROOT, assert_clean, metrics, run_page

PAGE = str(ROOT / "views/data.py")


def _page() -> AppTest:
    return run_page(PAGE, timeout=120)


def _finding_titles(at: AppTest) -> list[str]:
    return [e.label for e in at.expander if "·" in e.label]


def test_default_sample_shows_score_findings_charts_and_downloads():
    at = _page()
    shown = metrics(at)
    assert shown["Rows"] == "499"
    assert any("88 test rows" in c.value for c in at.caption)
    score = int(shown["Readiness"].split("/")[0])
    assert 0 <= score < 90  # the sample is planted with problems
    titles = " ".join(_finding_titles(at))
    for planted in ("personal data", "repeat an earlier row", "empty", "also appear in train"):
        assert planted in titles, (planted, titles)
    assert len(at.get("plotly_chart")) >= 3  # gauge + distributions
    labels = [b.label for b in at.get("download_button")]
    assert any("JSON" in x for x in labels) and any("HTML" in x for x in labels) and any("Cleaned" in x for x in labels)


def test_clean_sample_scores_100_with_no_problem_findings():
    at = _page()
    at.selectbox(key="dc_sample").set_value("clean_reviews").run()
    assert_clean(at)
    assert metrics(at)["Readiness"] == "100 / 100"
    assert not [t for t in _finding_titles(at) if not t.startswith("**INFO**")]


def test_upload_is_checked_and_kept_for_reuse():
    at = _page()
    at.radio(key="dc_source").set_value("Upload a file").run()
    rows = ["id,age,city"] + [f"{i},{20 + i % 50},Lyon" if i % 10 else "1,21,Lyon" for i in range(1, 200)]
    at.file_uploader(key="dc_upload").set_value(("people.csv", "\n".join(rows).encode(), "text/csv")).run()
    assert_clean(at)
    assert metrics(at)["Rows"] == "199"
    assert any("repeat an earlier row" in t for t in _finding_titles(at))
    at.radio(key="dc_source").set_value("Uploaded earlier").run()
    assert_clean(at)
    assert "people.csv" in at.selectbox(key="dc_previous").options


def test_binary_file_named_csv_is_one_clear_error():
    at = _page()
    at.radio(key="dc_source").set_value("Upload a file").run()
    at.file_uploader(key="dc_upload").set_value(("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1 and "binary" in at.error[0].value.lower(), [e.value for e in at.error]


def test_large_upload_runs_in_a_worker_process_and_the_page_polls_it():
    at = _page()
    at.radio(key="dc_source").set_value("Upload a file").run()
    body = "id,text,label\n" + "".join(f"{i},customer message number {i} about order {i * 7},{'ab'[i % 2]}\n"
                                       for i in range(40_000))
    assert len(body) > 1_000_000  # over the inline limit: a background job
    at.file_uploader(key="dc_upload").set_value(("big.csv", body.encode(), "text/csv")).run()
    assert not at.exception
    deadline = time.monotonic() + 120
    while "Readiness" not in metrics(at):
        assert time.monotonic() < deadline, "the background check never finished"
        assert not at.error, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    assert_clean(at)
    assert metrics(at)["Rows"] == "40,000"


def test_readiness_gauge_leaves_room_for_its_last_tick_label():
    """Issue 11 item 14: "100" at the arc's right end was clipped to "10" (20 px side margins). The
    label of the last tick sits outside the indicator's domain; the margins must hold three digits."""
    import json

    at = _page()
    gauge = json.loads(at.get("plotly_chart")[0].proto.spec)
    indicator = gauge["data"][0]
    assert indicator["type"] == "indicator"
    axis = indicator["gauge"]["axis"]
    assert axis["range"] == [0, 100] and axis["tickvals"][-1] == 100
    margin = gauge["layout"]["margin"]
    # Measured in Chromium (380 px wide figure, default 12 px font): the "100" label ends 36 px right
    # of the arc's domain; with the old 20 px margin it ran 16 px past the figure's edge.
    assert margin["r"] >= 36 and margin["l"] >= 20, margin


def test_windows_csv_and_excel_workbook_are_read_with_a_sheet_picker():
    """Issue 11 item 5: a cp1252 CSV is read and its encoding reported as a finding; a workbook is read,
    first sheet by default, another one picked on the page."""
    at = _page()
    at.radio(key="dc_source").set_value("Upload a file").run()
    body = "id,review\r\n" + "".join(f"{i},Café crème n°{i} très bon à 5€\r\n" for i in range(1, 60))
    at.file_uploader(key="dc_upload").set_value(("export.csv", body.encode("cp1252"), "text/csv")).run()
    assert_clean(at)
    assert metrics(at)["Rows"] == "59"
    assert any("encoded in cp1252" in t for t in _finding_titles(at))
    assert any("cp1252" in c.value for c in at.caption)

    import io

    from tests.datacheck.xlsx_files import write_xlsx

    book = io.BytesIO()
    write_xlsx(book, {"Orders": [["order_id", "amount"]] + [[i, i * 1.5] for i in range(1, 41)],
                      "Notes": [["note"], ["first"], ["second"], ["third"]]})
    at.file_uploader(key="dc_upload").set_value(("book.xlsx", book.getvalue(),
                                                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")).run()
    assert_clean(at)
    assert at.selectbox(key="dc_sheet").options == ["Orders", "Notes"]
    assert metrics(at)["Rows"] == "40"
    assert any("id columns (no outlier, drift or constant check): order_id" in c.value for c in at.caption)
    at.selectbox(key="dc_sheet").set_value("Notes").run()
    assert_clean(at)
    assert metrics(at)["Rows"] == "3"
