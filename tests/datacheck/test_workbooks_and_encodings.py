"""Files founders actually have (issue 11 item 5): Excel workbooks (first sheet by default, ``--sheet``
to choose) and Windows-exported CSVs in cp1252/latin-1, read and reported; binary still refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import ValidationError
from engine.tabular import open_dataset, read_frame, sheet_names

from .conftest import by_id, check
from .xlsx_files import write_xlsx

WINDOWS_CSV = ("id,review,price\r\n1,Café au lait was très bon,5€\r\n2,“Great” naïve product; façade ok,12,50\r\n"
               "3,Crème brûlée for the whole family,7€\r\n4,Señor Müller's Zürich order,9€\r\n")


def _cp1252(tmp_path, name="export.csv"):
    path = tmp_path / name
    path.write_bytes(WINDOWS_CSV.replace("12,50", '"12,50"').encode("cp1252"))
    return path


def test_cp1252_csv_is_read_and_reported(tmp_path):
    path = _cp1252(tmp_path)
    ds = open_dataset(path)
    assert ds.encoding == "cp1252"
    frame = read_frame(ds)
    assert frame["review"].tolist()[0] == "Café au lait was très bon" and frame["price"].tolist()[1] == "12,50"
    report = check(path)
    assert report.encoding == "cp1252"
    [f] = by_id(report, "file_encoding")
    assert f.severity == "low" and f.safe_fix == "to_utf8" and "cp1252" in f.title and "UTF-8" in f.fix


def test_safe_fix_writes_utf8(tmp_path):
    out = tmp_path / "clean.csv"
    report = check(_cp1252(tmp_path), fix_out=out)
    text = out.read_bytes().decode("utf-8")                 # raises if it were not UTF-8
    assert "Crème brûlée" in text and "Zürich" in text and "“Great”" in text
    assert {"id": "to_utf8", "count": 4, "what": "rows re-encoded from cp1252 to UTF-8"} in report.fix["actions"]


def test_latin1_text_and_jsonl(tmp_path):
    (tmp_path / "notes.txt").write_bytes("Première ligne, déjà vue\nDeuxième ligne à lire\n".encode("latin-1"))
    ds = open_dataset(tmp_path / "notes.txt")
    assert list(ds.documents()) == ["Première ligne, déjà vue", "Deuxième ligne à lire"]
    (tmp_path / "r.jsonl").write_bytes('{"text": "Smörgåsbord à la carte"}\n'.encode("latin-1"))
    assert read_frame(open_dataset(tmp_path / "r.jsonl"))["text"].tolist() == ["Smörgåsbord à la carte"]


@pytest.mark.parametrize("data", [bytes(range(256)) * 20, b"a,b\n" + b"\x00\x01\x02\x03" * 500])
def test_binary_is_still_refused(tmp_path, data):
    path = tmp_path / "blob.csv"
    path.write_bytes(data)
    with pytest.raises(ValidationError, match="binary"):
        open_dataset(path)


def _book(tmp_path):
    return write_xlsx(tmp_path / "book.xlsx", {
        "Reviews": [["review_id", "text", "label", "stars"]]
        + [[1000 + i, f"review number {i} says the product is {'good' if i % 2 else 'bad'} overall", "pos" if i % 2 else "neg", 4.5 if i % 2 else 2]
           for i in range(30)],
        "Customers": [["customer", "country", "spend"], ["C1", "FR", 10.25], ["C2", "DE", None], ["C3", "IT", 7]],
    })


def test_xlsx_first_sheet_by_default_and_values_as_a_csv_would_hold_them(tmp_path):
    path = _book(tmp_path)
    assert sheet_names(path) == ["Reviews", "Customers"]
    ds = open_dataset(path)
    assert (ds.format, ds.sheet, ds.sheets) == ("xlsx", "Reviews", ["Reviews", "Customers"])
    frame = read_frame(ds)
    assert frame.columns.tolist() == ["review_id", "text", "label", "stars"]
    assert frame.loc[0, "review_id"] == "1000" and frame.loc[0, "stars"] == "2" and frame.loc[1, "stars"] == "4.5"
    other = read_frame(open_dataset(path, sheet="Customers"))
    assert other["spend"].tolist()[0] == "10.25" and other["spend"].isna().tolist() == [False, True, False]
    with pytest.raises(ValidationError, match="has no sheet 'Nope'; its sheets: 'Reviews', 'Customers'"):
        open_dataset(path, sheet="Nope")


def test_xlsx_through_the_checks_and_the_cli(tmp_path):
    path = _book(tmp_path)
    report = check(path)
    assert report.format == "xlsx" and report.sheet == "Reviews" and report.rows == 30 and report.text_col == "text"
    run = subprocess.run([sys.executable, "-m", "engine", "check", str(path), "--sheet", "Customers", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["sheet"] == "Customers" and out["rows"] == 3 and out["columns"] == 3
    bad = subprocess.run([sys.executable, "-m", "engine", "check", str(path), "--sheet", "Nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "its sheets: 'Reviews', 'Customers'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "archive.csv"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(ValidationError, match="ZIP archive, not a data file or an Excel workbook"):
        open_dataset(path)


def test_a_workbook_is_cleaned_into_a_csv(tmp_path):
    path = _book(tmp_path)
    out = tmp_path / "clean.csv"
    report = check(path, fix_out=out)
    assert report.fix["format"] == "csv" and out.read_text().startswith("review_id,text,label,stars\n1000,")
    with pytest.raises(ValidationError, match="cannot write a workbook"):
        check(path, fix_out=tmp_path / "clean.xlsx")
