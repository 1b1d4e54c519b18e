"""The registry of data checks: ``CHECKS``, a list of Check classes in report order.

Each check lives in its own module here. To add one, write ``checks/<id>.py`` with a ``Check``
subclass (or a module-level ``CHECKS`` list of them) and add the module name to :data:`MODULES`.
A listed module that is missing or fails to import raises at import time: a report must never
quietly lack a check.
"""

from __future__ import annotations

import importlib
import inspect

from engine.datacheck.base import Check

TABULAR = ("schema", "missing_values", "duplicate_rows", "constant_column", "mixed_types", "outliers",
           "file_encoding")
TEXT = ("empty_text", "duplicate_text", "near_duplicates", "pii", "encoding_errors", "low_quality_text", "language", "tokens")
LABELS = ("label_imbalance", "conflicting_labels", "train_test_leakage", "drift")
MODULES = TABULAR + TEXT + LABELS


def _classes(module) -> list[type[Check]]:
    listed = getattr(module, "CHECKS", None)
    if listed is not None:
        return list(listed)
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Check) and obj is not Check and obj.id and obj.__module__ == module.__name__]


def load_checks() -> list[type[Check]]:
    found: list[type[Check]] = []
    for name in MODULES:
        found.extend(_classes(importlib.import_module(f"{__name__}.{name}")))
    ids = [c.id for c in found]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise RuntimeError(f"two checks share the id(s) {sorted(dupes)}")
    return found


CHECKS: list[type[Check]] = load_checks()
