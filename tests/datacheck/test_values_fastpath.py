"""The dictionary-encoded fast path of engine.datacheck.values must answer exactly like the plain
path: missing cells, types, numbers, PII candidates, and hashes that are equal iff values are equal."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from engine.datacheck import values as V
from engine.datacheck.checks import pii

POOL = ["", " ", "NA", "n/a", " None ", "nan", "null", "1", "+1", "-2.5", "1e5", "1E-3", ".5", "5.", "true", " Yes",
        "no", "2020-01-02", "2020-01-02T10:11", "01/02/2020", "abc", "é", "日本", "a" * 7, "a" * 8, "b" * 63, "c" * 64,
        "d" * 65, "x" * 300, "john@example.com", "+33 6 12 34 56 78", "4111 1111 1111 1111", "10.0.0.1",
        "fe80::1:2:3", "<NA>", "None"]


def _column(rng: random.Random) -> pd.Series:
    def one() -> str:
        if rng.random() < 0.3:
            return rng.choice(POOL)
        return "".join(rng.choice("ab01 .-@:é") for _ in range(rng.randint(0, 80)))

    n, k = rng.randint(1, 1500), rng.randint(1, 40)
    uniq = [one() for _ in range(k)]
    vals = ([None if rng.random() < 0.05 else rng.choice(uniq) for _ in range(n)] if rng.random() < 0.7
            else [one() for _ in range(n)])
    if rng.random() < 0.3:  # a chunked arrow array, as pyarrow's reader hands over
        cut = rng.randint(0, n)
        arr = pa.chunked_array([pa.array(vals[:cut], pa.large_string()), pa.array(vals[cut:], pa.large_string())])
        return pd.Series(pd.arrays.ArrowStringArray(arr))
    return pd.Series(pd.array(vals, dtype="str"))


def _answers(s: pd.Series, share: float, monkeypatch) -> tuple:
    monkeypatch.setattr(V, "_ENCODE_SHARE", share)
    V.clear_cache()
    out = (V.missing_mask(s).tolist(), V.type_codes(s).tolist(), np.nan_to_num(V.numeric(s), nan=-9e99).tolist(),
           pii._candidates(s), V.column_hashes(s).tolist())
    V.clear_cache()
    return out


@pytest.mark.parametrize("seed", range(40))
def test_encoded_and_plain_paths_agree(seed, monkeypatch):
    s = _column(random.Random(seed))
    encoded = _answers(s, 2.0, monkeypatch)
    plain = _answers(s, -1.0, monkeypatch)
    assert encoded == plain
    hashes = encoded[-1]
    keys = [None if v is None or v is pd.NA else v for v in s.tolist()]
    by_value: dict = {}
    by_hash: dict = {}
    for key, h in zip(keys, hashes):
        by_value.setdefault(key, set()).add(h)
        by_hash.setdefault(h, set()).add(key)
    assert all(len(v) == 1 for v in by_value.values()), "one value, two hashes"
    assert all(len(v) == 1 for v in by_hash.values()), "two values, one hash"


def test_first_rows_of_any_hash_bucket_answer_like_one_hash_index_over_every_chunk():
    """The Dask engine's exact-duplicate shuffle: per bucket (hash mod G), values.first_rows must give each
    row the verdict one HashIndex fed chunk by chunk in row order gives it (few keys: many repeats)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 12), max_size=120), st.integers(1, 5), st.integers(1, 40))
    def check(keys, buckets, chunk):
        hashes = V._mix(np.asarray(keys, np.uint64))
        rows = np.arange(len(keys), dtype=np.int64) * 3 + 7
        index, dup, first = V.HashIndex(), [], []
        for a in range(0, len(keys), chunk):
            d, f = index.add(hashes[a:a + chunk], rows[a:a + chunk])
            dup.append(d)
            first.append(f)
        dup = np.concatenate(dup) if dup else np.empty(0, bool)
        first = np.concatenate(first) if first else np.empty(0, np.int64)
        got_dup, got_first = np.zeros(len(keys), bool), np.full(len(keys), -9, np.int64)
        for g in range(buckets):
            part = np.flatnonzero(hashes % np.uint64(buckets) == np.uint64(g))
            got_dup[part], got_first[part] = V.first_rows(hashes[part], rows[part])
        assert got_dup.tolist() == dup.tolist() and got_first.tolist() == first.tolist()
        assert len(index) == len(keys) - int(dup.sum())  # what the checks report as distinct

    check()
