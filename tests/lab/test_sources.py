"""The lab reads through the one reader (issue 11 items 5 and 15): legacy encodings and Excel
workbooks reach the lab as they reach the data checks, and the lab keeps no reader of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from engine.lab.data import DataInput, load_dataset
from tests.datacheck.xlsx_files import write_xlsx

pytest.importorskip("torch")  # (engine.lab.data imports torch where it makes batches)

ROOT = Path(__file__).resolve().parents[2]


def test_cp1252_text_is_read_and_its_encoding_reported(tmp_path):
    text = "Le café était très bon, merci à l'équipe.\n" * 40
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode("cp1252"))
    ds = load_dataset(DataInput(path=str(path)), context=16)
    assert ds.tokenizer.decode(np.concatenate([ds.train_ids, ds.val_ids])) == text
    src = ds.describe()["source"]
    assert src["encoding"] == "cp1252" and "not UTF-8" in src["encoding_note"]


def test_xlsx_table_for_classification(tmp_path):
    rows = [["text", "label"]] + [[f"{'great' if i % 2 else 'awful'} product number {i}", "pos" if i % 2 else "neg"]
                                  for i in range(40)]
    path = write_xlsx(tmp_path / "reviews.xlsx", {"Data": rows})
    ds = load_dataset(DataInput(path=str(path), task="classify", val_fraction=0.2), context=32)
    src = ds.describe()["source"]
    assert (src["format"], src["sheet"], src["text_col"], src["label_col"]) == ("xlsx", "Data", "text", "label")
    assert ds.label_names == ["neg", "pos"] and len(ds.train_x) + len(ds.val_x) == 40


def test_the_lab_has_no_file_reader_of_its_own():
    """No parsing of CSV, JSON, Parquet or gzip where the lab reads data: engine.tabular reads every file."""
    readers = {"gzip", "csv", "pyarrow.csv", "pyarrow.parquet", "zlib", "json"}
    for path in (ROOT / "engine" / "lab" / "data.py", ROOT / "engine" / "lab" / "sources.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not (imported & readers), (path.name, imported & readers)
        assert not {c for c in calls if c.endswith(("read_csv", "read_json", "read_parquet", "json.loads"))}, path.name
    data = ast.parse((ROOT / "engine" / "lab" / "data.py").read_text())
    private = [a.name for n in ast.walk(data) if isinstance(n, ast.ImportFrom) and n.module == "engine.lab.sources"
               for a in n.names if a.name.startswith("_")]
    assert private == []
