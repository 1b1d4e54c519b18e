"""``low_quality_text``: documents that fail Gopher-style quality rules.

Rules from Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
Gopher", App. A.1.1 (MassiveText quality filters); words = whitespace-separated tokens:

========================  ==========================================================================
rule                      fires when
========================  ==========================================================================
``too_short``             <= 2 words, or short for this corpus (see below), never a fixed web floor
``too_long``              > 100,000 words (Gopher)
``mean_word_length``      mean word length outside [3, 10] characters (Gopher); docs >= 20 words
``symbol_ratio``          ('#' + '...' + '…') / words > 0.1 (Gopher); docs >= 20 words
``bullet_lines``          > 90% of lines start with a bullet (Gopher); docs >= 3 non-empty lines
``ellipsis_lines``        > 30% of lines end with an ellipsis (Gopher); docs >= 3 non-empty lines
``non_alpha_words``       < 80% of words hold a letter (Gopher), docs >= 50 words; docs of 10–49
                          words only below 50% (prices, order numbers and dates are normal there)
``duplicate_lines``       > 30% of lines repeat, or > 20% of line characters in repeated lines
                          (Gopher); docs >= 5 non-empty lines
``top_ngram``             the most frequent 2/3/4-gram covers > 20/18/16% of word characters
                          (Gopher); docs >= 50 words
``duplicate_ngrams``      characters in repeated 5..10-grams > 15/14/13/12/11/10% (Gopher);
                          docs >= 50 words
========================  ==========================================================================

Length is judged against the dataset's own length distribution, not Gopher's 50-word floor, which
was written for web pages and flags half of a clean set of reviews, tickets or chat turns: a row is
``too_short`` when it has at most 2 words, or when it is both an outlier of the corpus's log word
counts (modified z-score below -3.5, Iglewicz & Hoaglin 1993, the ``outliers`` check's rule on
log(words)) and under half the median. A rule that fires on more than :data:`DATASET_WIDE` (30%) of
the non-empty rows describes what the dataset is (search queries, bullet lists, code), not defects in
some of its rows: such a rule is left out of the finding and reported apart, at severity ``info``
(``details["dataset_wide_rules"]``). Gopher's stop-word rule (>= 2 English stop
words) is left out: it would flag every non-English document. Documents mostly in scripts without
spaces between words (CJK, Thai, ...) skip the word-based rules. Empty texts are ``empty_text``'s.
``count`` = rows flagged by at least one active rule; ``details["rows_by_rule"]`` per rule.

Per-document cap: the statistics are computed over a document's first 100,000 words (and at most
2,000,000 characters): a longer document already fails ``too_long`` — Gopher drops it whatever the
other rules say — and the cap keeps one 20 MB single-line file from costing seconds and a gigabyte
(word lists and n-gram tuples grow with the document). A capped document counts as 100,001 words.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.text_utils import agree, example_text, plural, share_severity

RULES = ("too_short", "too_long", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
         "non_alpha_words", "duplicate_lines", "top_ngram", "duplicate_ngrams")
_BIT = {r: 1 << i for i, r in enumerate(RULES)}
_SHORT_LONGMODE = 1 << len(RULES)        # < 50 words (Gopher's floor; kept for the sample pools only)
_SHORT_SHORTMODE = 1 << (len(RULES) + 1)  # <= 2 words: too_short in any dataset
LONG_DOC_WORDS = 50        # Gopher's floor: documents this long get the n-gram and alpha rules
TINY_WORDS = 2             # at most this many words is too short in any dataset
SHORT_Z = -3.5             # modified z-score of log(words) below which a row is short for its corpus ...
SHORT_OF_MEDIAN = 0.5      # ... when it also has under half the median's words
DATASET_WIDE = 0.30        # a rule firing on more of the rows than this describes the dataset

_NO_LETTER_WORD = re.compile(r"(?<!\S)(?:[^\s\w]|[\d_])+(?!\S)")
_NO_SPACE_SCRIPT = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_BULLETS = ("•", "-", "*", "·", "‣", "◦", "⁃", "▪", "●", "–", "→", "○", "■", "□")
_TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
_DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
MAX_WORDS = 100_000        # Gopher's too_long limit: the rules look at this many words of a document
MAX_CHARS = 2_000_000      # ... and at most this many characters (a document with few, huge "words")


def _dup_ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Share of word characters inside n-grams that occur more than once (each word counted once)."""
    grams = list(zip(*(words[i:] for i in range(n))))
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            for k in range(i, i + n):
                covered[k] = True
    return sum(len(w) for w, c in zip(words, covered) if c) / total_chars


def _count_words(text: str, block: int = 1 << 22) -> int:
    """Whitespace-separated words of a long text without building the word list (numpy, 4 MB blocks;
    ASCII whitespace, which is what separates words in practice)."""
    import numpy as np

    total, prev_space = 0, True
    for i in range(0, len(text), block):
        b = np.frombuffer(text[i:i + block].encode("utf-8", "surrogatepass"), np.uint8)
        space = (b == 32) | ((b >= 9) & (b <= 13))
        starts = ~space
        starts[1:] &= space[:-1]
        starts[0] &= prev_space
        total += int(starts.sum())
        prev_space = bool(space[-1]) if len(space) else prev_space
    return total


def _rules_on_head(head: str) -> int:
    """The rule bits (too_short/too_long aside) of a document judged by its first words."""
    return quality_flags(head)[1] & ~(_SHORT_LONGMODE | _SHORT_SHORTMODE | _BIT["too_long"])


def quality_flags(text: str) -> tuple[int, int]:
    """``(words, bits)``: the word count and a bit set of the rules ``text`` fails (mode-dependent
    ``too_short`` is reported by two private bits and resolved by the check)."""
    capped = len(text) > MAX_CHARS
    total_words = None
    if capped:
        total_words = _count_words(text)
        if total_words > MAX_WORDS:
            return MAX_WORDS + 1, _BIT["too_long"] | _rules_on_head(text[:MAX_CHARS])
        text = text[:MAX_CHARS]
    words = text.split(maxsplit=MAX_WORDS)
    if len(words) > MAX_WORDS:  # cut at the 100,001st word: the rules see the first 100,000
        rest = words.pop()
        text = text[: len(text) - len(rest)]
        capped = True
    n = len(words)
    bits = _BIT["too_long"] if capped and n >= MAX_WORDS else 0
    no_spaces = len(_NO_SPACE_SCRIPT.findall(text)) > 0.3 * len(text) if not text.isascii() else False
    if not no_spaces:
        if n < 3:
            bits |= _SHORT_SHORTMODE
        if n < LONG_DOC_WORDS:
            bits |= _SHORT_LONGMODE
        if n > MAX_WORDS:
            bits |= _BIT["too_long"]
        if n >= 20:
            mean = sum(map(len, words)) / n
            if not 3 <= mean <= 10:
                bits |= _BIT["mean_word_length"]
            if (text.count("#") + text.count("...") + text.count("…")) / n > 0.1:
                bits |= _BIT["symbol_ratio"]
        if n >= 10:
            alpha = 1 - len(_NO_LETTER_WORD.findall(text)) / n
            if alpha < (0.8 if n >= LONG_DOC_WORDS else 0.5):
                bits |= _BIT["non_alpha_words"]
    if "\n" in text:
        lines = [ln.strip() for ln in text.split("\n")]
        lines = [ln for ln in lines if ln]
        if len(lines) >= 3:
            if sum(ln.startswith(_BULLETS) for ln in lines) > 0.9 * len(lines):
                bits |= _BIT["bullet_lines"]
            if sum(ln.endswith(("...", "…")) for ln in lines) > 0.3 * len(lines):
                bits |= _BIT["ellipsis_lines"]
        if len(lines) >= 5:
            counts = Counter(lines)
            dup = sum(c - 1 for c in counts.values())
            dup_chars = sum(len(ln) * (c - 1) for ln, c in counts.items())
            if dup > 0.3 * len(lines) or dup_chars > 0.2 * sum(map(len, lines)):
                bits |= _BIT["duplicate_lines"]
    if n >= LONG_DOC_WORDS and not no_spaces:
        low = [w.lower() for w in words]
        total = sum(map(len, low))
        for k, limit in _TOP_NGRAM.items():
            gram, count = Counter(zip(*(low[i:] for i in range(k)))).most_common(1)[0]
            if count > 1 and count * sum(map(len, gram)) / total > limit:
                bits |= _BIT["top_ngram"]
                break
        # repeated-n-gram coverage can only shrink as n grows, so n=5 at <= 10% clears all six rules
        if _dup_ngram_fraction(low, 5, total) > 0.10:
            for k, limit in _DUP_NGRAM.items():
                if _dup_ngram_fraction(low, k, total) > limit:
                    bits |= _BIT["duplicate_ngrams"]
                    break
    if total_words is not None:  # few, huge words: the rules saw the first 2M characters
        return total_words, bits
    return (n + 1 if capped and n >= MAX_WORDS else n), bits


def rules_of(bits: int, mode: str = "") -> list[str]:
    """The rule names that ``bits`` fail (``too_short`` once resolved by the check, or <= 2 words;
    ``mode`` is accepted for old callers and ignored)."""
    out = [r for r in RULES if bits & _BIT[r]]
    if bits & _SHORT_SHORTMODE and "too_short" not in out:
        out.insert(0, "too_short")
    return out


def short_floor(words: np.ndarray) -> float:
    """The word count under which a row is short for this corpus (the rows at most 2 words aside):
    min(half the median, exp(c + SHORT_Z * s)) with (c, s) the robust center and scale of
    log(words) (median and MAD/0.6745, or 1.253314 x mean absolute deviation when MAD is 0). 0 when
    the spread is zero."""
    if not len(words):
        return 0.0
    logw = np.log(np.maximum(words, 1).astype(float))
    c = float(np.median(logw))
    dev = np.abs(logw - c)
    mad = float(np.median(dev))
    scale = mad / 0.6745 if mad > 0 else 1.253314 * float(dev.mean())
    if scale <= 0:
        return 0.0
    return float(min(SHORT_OF_MEDIAN * np.median(words), np.exp(c + SHORT_Z * scale)))


class LowQualityText(Check):
    """Rows failing Gopher quality heuristics (symbols, bullets, repetition), with length judged
    against the dataset's own length distribution."""

    id = "low_quality_text"
    title = "Low-quality text (Gopher heuristics, lengths judged against the dataset)"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.words: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []   # every non-empty row, with its words and rule bits
        self.bits: list[np.ndarray] = []
        self.samples: dict[int, str] = {}  # first flagged texts, for examples
        self.samples_short: dict[int, str] = {}  # first texts under 50 words, for too_short examples

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values = chunk[ctx.text_col].tolist() if ctx.text_col in chunk.columns else []
        words, rows, bits = [], [], []
        for row, v in zip(chunk.index.tolist(), values):
            if not isinstance(v, str) or not v.strip():
                continue
            n, b = quality_flags(v)
            words.append(n)
            rows.append(row)
            bits.append(b & ~_SHORT_LONGMODE)
            pool = self.samples if b & ~_SHORT_LONGMODE else self.samples_short if b else None
            if pool is not None and len(pool) < 50:
                pool[int(row)] = v[:2000]
        self.words.append(np.array(words, dtype=np.int64))
        self.rows.append(np.array(rows, dtype=np.int64))
        self.bits.append(np.array(bits, dtype=np.int64))

    def merge(self, other: "LowQualityText") -> None:
        """Fold in the state of the rows that follow ``other``'s partition (Dask's combine step: a
        pass over both in order would leave this state)."""
        self.words += other.words
        self.rows += other.rows
        self.bits += other.bits
        for mine, theirs in ((self.samples, other.samples), (self.samples_short, other.samples_short)):
            for row, text in theirs.items():
                if len(mine) >= 50:
                    break
                mine[row] = text

    def finish(self, ctx: Context) -> list[Finding]:
        words = np.concatenate(self.words) if self.words else np.empty(0, dtype=np.int64)
        if not len(words):
            return []
        median = float(np.median(words))
        floor = short_floor(words)
        rows, bits = np.concatenate(self.rows), np.concatenate(self.bits)
        short = (words <= TINY_WORDS) | (words < floor)
        bits = np.where(short, bits | _BIT["too_short"], bits & ~_BIT["too_short"]) & ~_SHORT_SHORTMODE
        counts = {r: int(((bits & _BIT[r]) != 0).sum()) for r in RULES}
        total = len(words)
        wide = [r for r in RULES if counts[r] > DATASET_WIDE * total]
        wide_bits = sum(_BIT[r] for r in wide)
        out = []
        details_base = {"median_words": median, "too_short_below_words": round(max(floor, TINY_WORDS + 1), 1),
                        "dataset_wide_rules": {r: counts[r] for r in wide}}
        hit = (bits & ~wide_bits) != 0
        n = int(hit.sum())
        if n:
            by_rule = {r: c for r in RULES if r not in wide and (c := counts[r])}
            f_rows, f_bits = rows[hit], bits[hit] & ~wide_bits
            share = n / total
            top = ", ".join(f"{r.replace('_', ' ')} {c:,}" for r, c in sorted(by_rule.items(), key=lambda kv: -kv[1])[:3])
            out.append(Finding(
                id=self.id, severity=share_severity(share, high=0.5, medium=0.2), count=n,
                title=f"{plural(n, 'row')} {agree(n, 'looks', 'look')} like low-quality text ({top})",
                fix="Review the flagged rows and drop or clean those that are boilerplate, lists, "
                    "repeated lines or fragments (Gopher quality filters, Rae et al. 2021)",
                column=ctx.text_col, rows=f_rows[:MAX_ROWS].tolist(), rows_total=n,
                examples=self._examples(f_rows, f_bits),
                details={**details_base, "rows_by_rule": by_rule, "share_of_non_empty": round(share, 6)},
            ))
        if wide:
            in_wide = (bits & wide_bits) != 0
            m = int(in_wide.sum())
            names = ", ".join(f"{r.replace('_', ' ')} {counts[r]:,}" for r in wide)
            out.append(Finding(
                id=self.id, severity="info", count=m,
                title=(f"{plural(m, 'row')} ({m / total:.0%}) fail a quality rule that fires on most of this dataset "
                       f"({names}): that is what this data looks like, not a defect in some rows"),
                fix="Nothing to do unless this dataset should not look like this (then the rule names what is off)",
                column=ctx.text_col, rows=rows[in_wide][:MAX_ROWS].tolist(), rows_total=m,
                examples=self._examples(rows[in_wide], bits[in_wide] & wide_bits),
                details={**details_base, "rows_by_rule": {r: counts[r] for r in wide},
                         "share_of_non_empty": round(m / total, 6)},
            ))
        return out

    def _examples(self, rows: np.ndarray, bits: np.ndarray) -> list[dict]:
        examples = []
        samples = {**self.samples_short, **self.samples}
        for row, b in zip(rows.tolist(), bits.tolist()):
            if len(examples) >= MAX_EXAMPLES:
                break
            if row in samples:
                examples.append({"row": row, "rules": rules_of(b), "text": example_text(samples[row])})
        return examples
