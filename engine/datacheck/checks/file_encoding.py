"""``file_encoding``: a file written in a legacy encoding (cp1252, latin-1, ...) instead of UTF-8 —
the ``encoding_errors`` of a whole file.

The reader (:mod:`engine.tabular`) detects the encoding when a file's head is not UTF-8 (Windows-1252
when the text reads as Western European, else what charset-normalizer finds cleanest) and reads the
file in it. It was read correctly, but tokenizers and most tools assume UTF-8 and would turn its
accented letters into mojibake. One finding per split, severity ``low``; ``count`` = the split's rows.
The safe fix (``to_utf8``) is the cleaned file, which is always written as UTF-8.
"""

from __future__ import annotations

import pandas as pd

from engine.datacheck.base import Check, Context, Finding


class FileEncoding(Check):
    """A file that is not UTF-8 (read in the legacy encoding the reader detected)."""

    id = "file_encoding"
    title = "File encoding (legacy code pages instead of UTF-8)"
    needs = ()
    splits = ("train", "test")

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        pass

    def finish(self, ctx: Context) -> list[Finding]:
        from engine.tabular import encoding_label

        out = []
        for split, key, rows in (("train", "encoding", ctx.rows), ("test", "test_encoding", ctx.test_rows)):
            enc = ctx.options.get(key)
            if not enc or encoding_label(enc) == "UTF-8":
                continue
            name = encoding_label(enc)
            out.append(Finding(
                id=self.id, severity="low", count=rows, split=split,  # type: ignore[arg-type]
                title=(f"The {'test ' if split == 'test' else ''}file is encoded in {name}, not UTF-8 (read as {name}, "
                       "detected); tokenizers and most tools expect UTF-8"),
                fix=("Re-save the file as UTF-8 (in Excel: Save As > CSV UTF-8), or use the cleaned file "
                     "(safe fix: to_utf8, written as UTF-8)"),
                details={"encoding": name, "share": 1.0, "detected_by": "charset-normalizer"},
                safe_fix="to_utf8",
            ))
        return out
