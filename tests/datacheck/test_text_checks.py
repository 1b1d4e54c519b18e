"""``empty_text``, ``encoding_errors``, ``low_quality_text``, ``language`` and ``tokens`` through the
check protocol (several chunks, global row numbers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck.base import Context
from engine.datacheck.checks.empty_text import EmptyText
from engine.datacheck.checks.encoding_errors import EncodingErrors, repair
from engine.datacheck.checks.language import Language
from engine.datacheck.checks.low_quality_text import LowQualityText
from engine.datacheck.checks.tokens import Tokens, count_tokens, train_bpe
from engine.datacheck.text_utils import normalize, texts_of, truncate

SENTENCES = [
    "The package arrived two days late, but the support team replied quickly.",
    "I would like to change the delivery address for my last order.",
    "Thank you for the fast refund, I will order again next month.",
    "The app crashes every time I try to upload a photo from my phone.",
    "Could you explain why my invoice shows a different price than the website?",
    "Great quality for the price, although the instructions were hard to follow.",
    "My password reset email never arrived, even after three attempts.",
    "The blue jacket fits well and the fabric feels warm and soft.",
    "We booked the room for two nights and the staff were very friendly.",
    "Please cancel my subscription before the next billing date.",
]


def clean_texts(n: int = 60) -> list[str]:
    return [f"{SENTENCES[i % len(SENTENCES)]} Ticket {1000 + i} was opened on 2024-0{1 + i % 9}-1{i % 10}."
            for i in range(n)]


def run(check, texts, chunk: int = 7, column: str = "text"):
    frame = pd.DataFrame({column: pd.Series(texts, dtype=object), "id": range(len(texts))})
    ctx = Context(kind="text", columns=list(frame.columns), text_col=column, rows=len(frame))
    check.start(ctx)
    for p in range(1, check.passes + 1):
        if p > 1:
            check.start_pass(p, ctx)
        for a in range(0, len(frame), chunk):
            check.update(frame.iloc[a : a + chunk], ctx)
    return check.finish(ctx), ctx


# ---------------------------------------------------------------- text_utils


def test_text_utils():
    assert normalize("  Ｈｅｌｌｏ\n\tWORLD  ") == "hello world"
    assert truncate("a" * 300, 10) == "a" * 9 + "…"
    rows, texts = texts_of(pd.DataFrame({"t": ["a", None, 3, float("nan")]}, index=[7, 8, 9, 10]), "t")
    assert rows == [7, 8, 9, 10] and texts == ["a", "", "", ""]


# ---------------------------------------------------------------- empty_text


def test_empty_text_planted_rows():
    texts = clean_texts(20)
    for i, v in {2: "", 8: "   \n\t", 9: None, 15: float("nan"), 19: 12}.items():
        texts[i] = v
    [f], _ = run(EmptyText(), texts)
    assert f.count == 5 and f.rows == [2, 8, 9, 15, 19]
    assert f.details == {"missing": 3, "blank": 2, "share": 0.25}
    assert f.safe_fix == "drop_rows" and f.severity == "high"


def test_empty_text_clean():
    assert run(EmptyText(), clean_texts(20))[0] == []


# ---------------------------------------------------------------- encoding_errors


def test_encoding_errors_planted_rows():
    texts = clean_texts(30)
    texts[3] = "The cafÃ© was great, naÃ¯ve service though"
    texts[10] = "broken \ufffd byte here"
    texts[11] = "bell\x07 and form\x0cfeed"
    texts[20] = "C1 control \x85 char in text é"
    texts[28] = "lone surrogate \ud800 here"
    [f], _ = run(EncodingErrors(), texts)
    assert f.count == 5 and f.rows == [3, 10, 11, 20, 28]
    # ftfy also reads the C1 control as a mojibake trace
    assert f.details["rows_by_kind"] == {"mojibake": 2, "replacement_char": 1, "control_chars": 2, "surrogates": 1}
    ex = {e["row"]: e for e in f.examples}
    assert ex[3]["after"].startswith("The café was great, naïve")
    assert "\\x07" in ex[11]["before"] and "\x07" not in ex[11]["after"]
    assert f.safe_fix == "fix_encoding"


def test_encoding_clean_unicode_is_not_flagged():
    texts = clean_texts(10) + ["Crème brûlée, naïve résumé — “quoted” text", "Größe 10 µm ±5 °C, ¿Qué? ¡Sí!",
                               "日本語のテキストです。", "Привет, как дела?", "emoji 😀 ok", "tabs\tand\nnewlines\r\n"]
    assert run(EncodingErrors(), texts)[0] == []
    assert repair("x\x00y\ud800") == "xy"


# ---------------------------------------------------------------- low_quality_text


def test_low_quality_short_mode_planted():
    texts = clean_texts(40)
    texts[4] = "ok"                                                       # too short (< 3 words)
    texts[9] = "- item one\n- item two\n- item three\n- item four"          # bullet lines
    texts[17] = " ".join(["#sale #deal #cheap buy now"] * 6)             # symbol ratio
    texts[22] = " ".join(["12 45 78 90 33 21"] * 3)                        # < 50% words with letters
    texts[30] = "same line\nsame line\nsame line\nsame line\nother line"  # duplicate lines
    texts[35] = None                                                      # empty: not this check's
    [f], _ = run(LowQualityText(), texts)
    assert f.rows == [4, 9, 17, 22, 30] and f.count == 5
    assert 3 <= f.details["too_short_below_words"] <= f.details["median_words"] / 2  # judged against the corpus
    assert f.details["rows_by_rule"] == {"too_short": 1, "symbol_ratio": 1, "bullet_lines": 1,
                                         "non_alpha_words": 1, "duplicate_lines": 1}
    assert {e["row"] for e in f.examples} == {4, 9, 17, 22, 30}


def test_low_quality_long_mode_planted():
    rng = np.random.default_rng(0)
    words = " ".join(SENTENCES).replace(",", "").replace(".", "").split()

    def long_doc():
        return " ".join(rng.choice(words, size=120))

    texts = [long_doc() for _ in range(12)]
    texts[2] = SENTENCES[0]                                     # far shorter than this corpus's documents
    texts[7] = " ".join(["buy cheap pills now"] * 40)           # n-gram repetition
    [f], _ = run(LowQualityText(), texts, chunk=5)
    assert 12 < f.details["too_short_below_words"] <= 60                # judged against the corpus (median 120)
    assert f.rows == [2, 7]
    assert set(f.details["rows_by_rule"]) == {"too_short", "top_ngram", "duplicate_ngrams"}


def test_low_quality_clean_sentences():
    assert run(LowQualityText(), clean_texts(50))[0] == []


# ---------------------------------------------------------------- language

GERMAN = ["Die Lieferung kam zwei Tage zu spät, aber der Kundendienst hat schnell geantwortet.",
          "Ich möchte die Lieferadresse für meine letzte Bestellung ändern.",
          "Vielen Dank für die schnelle Rückerstattung, ich bestelle wieder."]


def test_language_planted_minority():
    texts = clean_texts(40)
    for i, row in enumerate((5, 18, 33)):
        texts[row] = GERMAN[i]
    texts[20] = "ok"  # too short to detect: unknown, not a minority language
    [f], ctx = run(Language(), texts)
    assert f.rows == [5, 18, 33] and f.count == 3
    assert f.details["dominant"] == "en" and "de" in f.details["distribution"]
    assert ctx.shared["language"]["unknown"] == 1


def test_language_single_language_no_finding():
    findings, ctx = run(Language(), clean_texts(40) + ["ok", None, "I love it"])
    assert findings == []
    assert ctx.shared["language"]["distribution"] == {"en": 1.0}


# ---------------------------------------------------------------- tokens


def test_tokens_bytes_fallback_on_small_data():
    [f], ctx = run(Tokens(), clean_texts(20) + [None, "   "])
    t = ctx.shared["tokens"]
    assert t["tokenizer"] == "bytes/4" and t["rows"] == 20 and f.count == 20 and f.severity == "info"
    assert t["total"] == sum(-(-len(x.encode()) // 4) for x in clean_texts(20))


def test_tokens_bpe_matches_encode_and_flags_long_rows():
    rng = np.random.default_rng(1)
    words = " ".join(SENTENCES).split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(20, 80)))) for _ in range(3000)]
    texts[2999] = " ".join(rng.choice(words, size=3000))        # > 2048 tokens
    [f], ctx = run(Tokens(), texts, chunk=1000)
    t = ctx.shared["tokens"]
    assert t["tokenizer"].startswith("bpe-8k trained on 3,000 docs") and t["method"] == "exact count with the trained BPE"
    assert f.rows == [2999] and t["long_rows"] == 1
    tok = train_bpe(texts)
    assert count_tokens(texts[:50], tok) == [len(tok.encode(x, add_special_tokens=False).ids) for x in texts[:50]]
    assert t["total"] == sum(count_tokens(texts, tok))
