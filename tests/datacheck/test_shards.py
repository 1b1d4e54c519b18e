"""Sharded input: a folder or glob read in file-name order, rows numbered across shards, any format
(gzip too), hidden and marker files left out; the single process streams the shards."""

from __future__ import annotations

import gzip

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.datacheck.runner import CheckInput, run_checks
from engine.tabular import open_dataset


def test_shards_are_read_in_file_name_order_with_rows_numbered_across_them(tmp_path):
    (tmp_path / "b-2.csv").write_text("id,text\n3,c\n4,d\n")
    with gzip.open(tmp_path / "a-1.jsonl.gz", "wt") as f:
        f.write('{"id": "1", "text": "a"}\n{"id": "2", "text": "b"}\n')
    pq.write_table(pa.table({"id": ["5"], "text": ["e"]}), tmp_path / "c-3.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden.csv").write_text("x\n1\n")
    ds = open_dataset(tmp_path)
    assert [s.name for s in ds.shards] == ["a-1.jsonl.gz", "b-2.csv", "c-3.parquet"]
    frame = pd.concat(list(ds.chunks(1)))
    assert list(frame.index) == [0, 1, 2, 3, 4] and list(frame["text"]) == ["a", "b", "c", "d", "e"]
    assert ds.rows_per_shard == [2, 2, 1] and ds.fraction() == 1.0
    glob = open_dataset(str(tmp_path / "[ab]-*"))
    assert [s.name for s in glob.shards] == ["a-1.jsonl.gz", "b-2.csv"]


def test_a_repeat_in_a_later_shard_points_at_the_earlier_shards_row(tmp_path):
    (tmp_path / "p0.csv").write_text("id,text\n1,hello there\n2,other words\n")
    (tmp_path / "p1.csv").write_text("id,text\n1,hello there\n3,more words\n")
    report = run_checks(CheckInput(path=str(tmp_path), checks=("duplicate_rows",)))
    dup = next(f for f in report.findings if f.id == "duplicate_rows")
    assert dup.rows == [2] and dup.examples[0]["same_as_row"] == 0
    assert report.file == f"{tmp_path.name} (2 shards)" and report.rows == 4
