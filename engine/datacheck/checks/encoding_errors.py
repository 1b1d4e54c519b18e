"""``encoding_errors``: mojibake and characters that should never be in training text.

Per row, four kinds (``details`` counts rows per kind; ``count`` = rows with at least one):

* ``mojibake``: UTF-8 decoded as Latin-1/cp1252 ("cafÃ©"), as flagged by ``ftfy.badness.is_bad``
  (Speer 2019, ftfy). ``ftfy.fix_text(t) != t`` is not used: it also straightens curly quotes.
* ``replacement_char``: U+FFFD, the trace of bytes that were already lost at decoding.
* ``control_chars``: C0 controls other than tab/newline/carriage return, DEL, and C1 controls.
* ``surrogates``: unpaired UTF-16 surrogates (U+D800–U+DFFF), which no valid UTF-8 can encode.

ASCII rows only need the control-character scan (``str.isascii`` is one C call), so the check stays
cheap on large mostly-English data. Examples show before/after ``ftfy.fix_text``.
"""

from __future__ import annotations

import re

import pandas as pd

from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.checks._util import capped
from engine.datacheck.text_utils import agree, example_text, plural, share_severity

KINDS = ("mojibake", "replacement_char", "control_chars", "surrogates")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encoding_problems(text: str) -> list[str]:
    """Which of ``KINDS`` occur in ``text`` (empty list for clean text or non-strings)."""
    if not isinstance(text, str) or not text:
        return []
    if text.isascii():
        return ["control_chars"] if _ASCII_CONTROL.search(text) else []
    from ftfy.badness import is_bad

    kinds = []
    if is_bad(text):
        kinds.append("mojibake")
    if "\ufffd" in text:
        kinds.append("replacement_char")
    if _CONTROL.search(text):
        kinds.append("control_chars")
    if _SURROGATE.search(text):
        kinds.append("surrogates")
    return kinds


def repair(text: str) -> str:
    """``ftfy.fix_text`` without quote straightening; leftover control characters, unpaired
    surrogates and U+FFFD (which nothing can bring back) are dropped."""
    import ftfy

    fixed = ftfy.fix_text(text, uncurl_quotes=False)
    return _CONTROL.sub("", _SURROGATE.sub("", fixed)).replace("\ufffd", "")


class EncodingErrors(Check):
    """Rows with mojibake, U+FFFD, control characters or unpaired surrogates in the text column."""

    id = "encoding_errors"
    title = "Encoding errors (mojibake, replacement and control characters)"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.rows: list[int] = []
        self.total = 0
        self.kinds = {k: 0 for k in KINDS}
        self.examples: list[dict] = []

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values = chunk[ctx.text_col].tolist() if ctx.text_col in chunk.columns else []
        for row, v in zip(chunk.index.tolist(), values):
            if not isinstance(v, str) or (v.isascii() and not _ASCII_CONTROL.search(v)):
                continue
            kinds = encoding_problems(v)
            if not kinds:
                continue
            self.total += 1
            for k in kinds:
                self.kinds[k] += 1
            if len(self.rows) < MAX_ROWS:
                self.rows.append(int(row))
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append({"row": int(row), "kinds": kinds,
                                      "before": example_text(_visible(v)),
                                      "after": example_text(repair(v))})

    def merge(self, other: "EncodingErrors") -> None:
        """Fold in the state of the rows that follow ``other``'s partition (Dask's combine step: a
        pass over both in order would leave this state)."""
        self.rows = capped(self.rows, other.rows, MAX_ROWS)
        self.examples = capped(self.examples, other.examples, MAX_EXAMPLES)
        self.total += other.total
        for k, n in other.kinds.items():
            self.kinds[k] += n

    def finish(self, ctx: Context) -> list[Finding]:
        n = self.total
        if not n:
            return []
        share = n / max(ctx.rows, n)
        kinds = [k for k in KINDS if self.kinds[k]]
        fixable = self.kinds["mojibake"] or self.kinds["control_chars"]
        fix = ("Repair the text with ftfy.fix_text (safe fix: fix_encoding)" if fixable else
               "Re-export the data from the source as UTF-8; the lost characters cannot be recovered")
        if self.kinds["replacement_char"] and fixable:
            fix += "; rows with U+FFFD lost characters at decoding: re-export them from the source as UTF-8"
        return [Finding(
            id=self.id, severity=share_severity(share, high=0.05, medium=0.005), count=n,
            title=f"{plural(n, 'row')} {agree(n, 'has', 'have')} broken encoding ({', '.join(k.replace('_', ' ') for k in kinds)})",
            fix=fix, column=ctx.text_col, rows=self.rows, rows_total=n, examples=self.examples,
            details={"rows_by_kind": {k: self.kinds[k] for k in kinds}, "share": round(share, 6)},
            safe_fix="fix_encoding" if fixable else None,
        )]


def _visible(text: str) -> str:
    """Control characters and surrogates shown as ``\\xNN``/``\\udNNN`` escapes so a report can print them."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                          _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))

