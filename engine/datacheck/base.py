"""What every data check shares: the finding it reports and the streaming protocol it follows.

A check is a small class with a stable ``id``. The runner reads the file in chunks (never whole by
accident) and feeds every chunk to every check, then asks each for its findings::

    check.start(ctx)                       # once, with what is known about the dataset
    check.update(chunk, ctx)               # per chunk: a pandas DataFrame whose index is the 0-based
                                           # data-row number in the file (header excluded)
    findings = check.finish(ctx)           # once: zero or more Finding

Checks that need two passes (robust outlier bounds, say) set ``passes = 2``; the runner then calls
``start_pass(2, ctx)`` and feeds the chunks again. Checks over two splits (leakage, drift) receive the
train chunks first, then ``ctx.split == "test"`` chunks of the second file.

Row numbers are 0-based indices of data rows in the file the finding is about (``Finding.split``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import pandas as pd

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

# JSON and the page list at most this many row indices and examples per finding; ``count`` and
# ``rows_total`` always carry the full number.
MAX_ROWS = 1000
MAX_EXAMPLES = 5


@dataclass
class Finding:
    """One problem found, with its evidence and a concrete fix."""

    id: str                      # the check's stable id, e.g. "duplicate_rows"
    severity: Severity
    count: int                   # what is counted is the check's contract (see its docstring)
    title: str                   # one line a founder understands: "1,204 rows repeat an earlier row"
    fix: str                     # a concrete action: "Drop them (safe fix: --fix)"
    column: str | None = None
    split: Literal["train", "test"] = "train"
    rows: list[int] = field(default_factory=list)       # 0-based data rows, at most MAX_ROWS
    rows_total: int = 0                                   # how many rows are involved in all
    examples: list[dict[str, Any]] = field(default_factory=list)  # masked; at most MAX_EXAMPLES
    details: dict[str, Any] = field(default_factory=dict)         # e.g. per-column breakdown
    safe_fix: str | None = None  # id of the automatic fix that applies ("drop_rows", "mask_pii", ...)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        self.count = int(self.count)
        self.rows_total = int(self.rows_total or len(self.rows))
        self.rows = [int(r) for r in self.rows[:MAX_ROWS]]
        self.examples = self.examples[:MAX_EXAMPLES]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What the runner knows about the dataset while the checks run."""

    kind: Literal["tabular", "text"]       # text: a text column exists (or the file is plain text)
    columns: list[str]
    text_col: str | None = None
    label_col: str | None = None
    split: Literal["train", "test"] = "train"
    has_test: bool = False
    rows: int = 0                          # data rows seen so far in the current split (final after pass 1)
    test_rows: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # e.g. near_dup_threshold
    id_columns: list[str] | None = None    # identifier columns (engine.datacheck.identifiers); None: by name
    shared: dict[str, Any] = field(default_factory=dict)   # results one check leaves for another


class Check:
    """Base class: override what you need. ``applies`` decides whether the check runs at all."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""          # what the check looks for, for the report's table of checks
    needs: ClassVar[tuple[str, ...]] = ()  # "text", "label", "test": skipped when missing
    passes: ClassVar[int] = 1
    splits: ClassVar[tuple[str, ...]] = ("train",)  # which splits' chunks it wants

    def applies(self, ctx: Context) -> bool:
        have = {"text": ctx.text_col is not None, "label": ctx.label_col is not None, "test": ctx.has_test}
        return all(have[n] for n in self.needs)

    def start(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        pass

    def start_pass(self, number: int, ctx: Context) -> None:  # noqa: B027 - optional hook
        pass

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        raise NotImplementedError

    def finish(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError
