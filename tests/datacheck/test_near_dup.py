"""``near_duplicates`` check and the reusable ``engine.datacheck.minhash`` pieces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.datacheck import minhash
from engine.datacheck.base import Context
from engine.datacheck.checks.near_duplicates import NearDuplicates
from engine.errors import ValidationError

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu apple banana cherry grape lemon "
         "mango olive peach pear plum").split()


def doc(seed: int, n: int = 30) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=n))


def run(frame: pd.DataFrame, chunk: int = 4, **options):
    ctx = Context(kind="text", columns=list(frame.columns), text_col="text", rows=len(frame), options=options)
    check = NearDuplicates()
    check.start(ctx)
    for p in (1, 2):
        if p == 2:
            check.start_pass(2, ctx)
        for a in range(0, len(frame), chunk):
            check.update(frame.iloc[a : a + chunk], ctx)
    return check.finish(ctx)


def corpus():
    texts = [doc(i) for i in range(20)]
    texts[5] = texts[1].replace("alpha", "ALPHA", 1) + " zulu"       # near copy of 1 (one word added)
    texts[9] = "  " + texts[1].upper() + "  "                            # exact copy of 1 after normalization
    texts[13] = texts[2][:-5] + " peach"                                 # near copy of 2 (last word changed)
    texts[17] = texts[13] + " mango"                                     # near copy of 13 -> same cluster as 2
    texts[3] = None
    texts[4] = "   "
    return texts


def test_planted_near_duplicates_exact_rows():
    [f] = run(pd.DataFrame({"text": corpus()}))
    assert f.id == "near_duplicates"
    assert f.rows == [5, 13, 17] and f.count == 3   # 9 is an exact duplicate: not reported here
    assert f.details["clusters"] == 2
    ex = {(e["row_a"], e["row_b"]) for e in f.examples}
    assert (1, 5) in ex and (2, 13) in ex
    assert all(e["similarity"] >= 0.8 for e in f.examples)


def test_clean_corpus_has_no_findings():
    frame = pd.DataFrame({"text": [doc(100 + i) for i in range(40)] + ["short one", "short two", None, ""]})
    assert run(frame, chunk=7) == []


def test_threshold_option_and_validation():
    a = doc(1, 20)
    b = " ".join(a.split()[:10] + ["zzz"] + a.split()[11:])  # one middle word changed
    sim = minhash.jaccard(minhash.shingles(a), minhash.shingles(b))
    assert 0.6 < sim < 0.95
    frame = pd.DataFrame({"text": [a, doc(7), b]})
    assert run(frame, near_dup_threshold=0.95) == []
    [f] = run(frame, near_dup_threshold=0.6)
    assert f.rows == [2]
    with pytest.raises(ValidationError):
        run(frame, near_dup_threshold=1.5)


def test_near_duplicate_pairs_api_and_cross_split():
    train = [doc(1), doc(2), doc(3)]
    test = [doc(4), train[2] + " extra", doc(2)]
    pairs = minhash.near_duplicate_pairs(train, test, threshold=0.8)
    assert [(i, j) for i, j, _ in pairs] == [(1, 2), (2, 1)]
    assert pairs[0][2] == 1.0
    exact_free = minhash.near_duplicate_pairs(train, test, threshold=0.8, exclude_exact=True)
    assert [(i, j) for i, j, _ in exact_free] == [(2, 1)]
    within = minhash.near_duplicate_pairs(train + [train[0] + " more"], threshold=0.8)
    assert [(i, j) for i, j, _ in within] == [(0, 3)]
    assert minhash.near_duplicate_pairs(["", None]) == []  # type: ignore[list-item]


def test_lsh_params_s_curve():
    r, b = minhash.lsh_params(0.8)
    assert r * b <= minhash.NUM_PERM
    assert 1 - (1 - 0.8**r) ** b >= 0.99
    assert 1 - (1 - 0.8 ** (r + 1)) ** (minhash.NUM_PERM // (r + 1)) < 0.99  # r is the largest such


def test_signatures_estimate_jaccard():
    a, b = doc(11, 60), doc(11, 60).replace("alpha", "omega")
    sig = minhash.signatures([a, b, ""])
    assert sig.shape == (3, minhash.NUM_PERM) and sig.dtype == np.uint32
    est = float((sig[0] == sig[1]).mean())
    assert abs(est - minhash.jaccard(minhash.shingles(a), minhash.shingles(b))) < 0.2
    assert (sig[2] == np.iinfo(np.uint32).max).all()


def test_candidate_pairs_big_bucket_is_linear():
    bands = np.zeros((500, 3), dtype=np.uint64)  # every row in the same bucket
    pairs = minhash.candidate_pairs(bands)
    assert len(pairs) < 2 * 500 and {tuple(p) for p in pairs.tolist()} >= {(0, k) for k in range(1, 500)}


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_shingles_properties(text):
    s = minhash.shingles(text)
    assert minhash.shingles(text.casefold()) == s  # case never matters (casefold, not lower: 'ı', 'ß')
    assert minhash.shingles("  " + text.replace(" ", "\n  ") + "\t") == s  # whitespace never matters
    assert minhash.jaccard(s, s) == (1.0 if s else 0.0)
    assert (not s) == (minhash.prepare(text) == b"")
    batch_h, offsets = minhash.shingle_hashes([minhash.prepare(text), b"", minhash.prepare("x" + text)])
    assert set(batch_h[offsets[0] : offsets[1]].tolist()) == s and offsets[1] == offsets[2]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=40), st.lists(st.sampled_from(WORDS), max_size=40))
def test_jaccard_symmetric_and_bounded(a, b):
    sa, sb = minhash.shingles(" ".join(a)), minhash.shingles(" ".join(b))
    j = minhash.jaccard(sa, sb)
    assert j == minhash.jaccard(sb, sa) and 0.0 <= j <= 1.0
