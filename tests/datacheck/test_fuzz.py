"""Fuzz corpus: random bytes, random quotes, truncations. Only a ValidationError or a clean read, fast."""

from __future__ import annotations

import gzip
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.tabular import open_dataset
from engine.errors import ValidationError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read(path) -> None:
    t = time.perf_counter()
    try:
        ds = open_dataset(path)
        for chunk in ds.chunks(7):
            assert chunk.index[0] >= 0
    except ValidationError as exc:
        assert str(exc) and "\n" not in str(exc)
    assert time.perf_counter() - t < 10


@SETTINGS
@given(data=st.binary(max_size=600), ext=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt", ".parquet", ""]))
def test_random_bytes(tmp_path, data, ext):
    path = tmp_path / f"f{ext}"
    path.write_bytes(data)
    _read(path)


_CSVISH = st.text(alphabet=st.sampled_from(list('ab1,"\n\r\t ;{}[]:é\\')), max_size=300)


@SETTINGS
@given(text=_CSVISH, ext=st.sampled_from([".csv", ".jsonl", ".json", ".txt"]))
def test_random_quotes_and_separators(tmp_path, text, ext):
    path = tmp_path / f"g{ext}"
    path.write_text("h1,h2\n" + text if ext == ".csv" else text, encoding="utf-8")
    _read(path)


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=400), gz=st.booleans())
def test_truncated_files(tmp_path, cut, gz):
    body = b"id,text,label\n" + b"".join(f'{i},"row {i}, with ""quotes""",{i % 3}\n'.encode() for i in range(40))
    data = gzip.compress(body) if gz else body
    path = tmp_path / ("t.csv.gz" if gz else "t.csv")
    path.write_bytes(data[: max(0, len(data) - cut)])
    _read(path)
