"""Built-in sample corpora: deterministic, sized as documented, correct arithmetic, balanced labels."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from engine.errors import ValidationError
from engine.lab.corpora import CORPORA, generate_corpus


def test_catalogue():
    assert {"arithmetic", "stories", "sentiment"} <= set(CORPORA)
    assert CORPORA["arithmetic"].task == "lm"
    assert CORPORA["stories"].task == "lm"
    assert CORPORA["sentiment"].task == "classify"
    for name, info in CORPORA.items():
        assert info.name == name and info.description
        assert info.to_dict()["task"] == info.task


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_deterministic_and_seeded(name):
    a, b, c = generate_corpus(name, seed=0), generate_corpus(name, seed=0), generate_corpus(name, seed=1)
    assert a.texts == b.texts and a.labels == b.labels
    assert a.texts != c.texts


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_fast(name):
    start = time.process_time()  # CPU time: other jobs on a shared machine do not count
    generate_corpus(name, seed=3)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize("name, low, high", [
    ("arithmetic", 100_000, 1_000_000), ("stories", 200_000, 1_000_000), ("sentiment", 100_000, 1_000_000)])
def test_sizes(name, low, high):
    corpus = generate_corpus(name)
    assert low <= corpus.n_chars <= high
    assert all(t.strip() for t in corpus.texts)
    assert corpus.to_dict()["n_chars"] == corpus.n_chars


def test_arithmetic_is_correct():
    corpus = generate_corpus("arithmetic")
    lines = "\n".join(corpus.texts).split("\n")
    assert len(lines) > 10_000
    ops = Counter()
    for line in lines:
        m = re.fullmatch(r"(\d+)([+-])(\d+)=(\d+)", line)
        assert m, line
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert a < 100 and b < 100
        assert c == (a + b if op == "+" else a - b)
        ops[op] += 1
    assert min(ops.values()) > 0.4 * len(lines)


def test_stories_are_english_with_recurring_names():
    corpus = generate_corpus("stories")
    story = corpus.texts[0]
    name = re.match(r"[^,]+, (\w+) the", story)[1]
    assert story.count(name) >= 3  # the hero recurs: structure a model can learn
    assert len(set(corpus.texts)) > 0.95 * len(corpus.texts)
    assert corpus.labels is None


def test_sentiment_labels_balanced_and_cued():
    corpus = generate_corpus("sentiment")
    assert corpus.label_names == ("negative", "neutral", "positive")
    assert len(corpus.labels) == len(corpus.texts) >= 3000
    counts = Counter(corpus.labels)
    assert set(counts) == set(corpus.label_names)
    assert max(counts.values()) - min(counts.values()) < 0.05 * len(corpus.labels)
    # the lexicons carry the label: "excellent" is nearly always positive, "awful" negative
    pos = [lab for t, lab in zip(corpus.texts, corpus.labels, strict=True) if re.search(r"\bexcellent\b", t)
           and " not " not in t]
    neg = [lab for t, lab in zip(corpus.texts, corpus.labels, strict=True) if re.search(r"\bawful\b", t)
           and " not " not in t]
    assert Counter(pos)["positive"] > 0.9 * len(pos) and len(pos) > 50
    assert Counter(neg)["negative"] > 0.9 * len(neg) and len(neg) > 50


@pytest.mark.parametrize("name, seed, match", [
    ("poems", 0, "unknown sample 'poems'"), ("stories", -1, "seed"), ("stories", 1.5, "seed")])
def test_bad_arguments(name, seed, match):
    with pytest.raises(ValidationError, match=match):
        generate_corpus(name, seed=seed)
