"""Excel and OpenDocument workbooks (.xlsx, .xlsm, .xls, .ods) through python-calamine (the calamine
Rust reader): one sheet, the first by default; its first row is the header. Values become the text a
CSV export would hold (whole numbers without ``.0``, dates ISO 8601, booleans ``true``/``false``,
empty cells missing), so every check sees a workbook as it sees the same sheet saved as CSV.

A sheet is read whole (a workbook is a ZIP of XML parts: there is no row stream to follow), which
Excel's own limit of 1,048,576 rows keeps bounded; the size limit applies to the file on disk.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

import pandas as pd

from engine.errors import ValidationError


def _workbook(path, name: str):
    from python_calamine import CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # noqa: BLE001 - calamine's errors (zip, xml, password) are one message
        raise ValidationError(f"{name} is not a readable Excel workbook ({str(exc).splitlines()[0][:160]})") from None


def sheet_names(path, name: str | None = None) -> list[str]:
    """The sheets of a workbook, in order."""
    return list(_workbook(path, name or str(path)).sheet_names)


def _cell_text(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, _dt.datetime):
        return v.date().isoformat() if v.time() == _dt.time() else v.isoformat(sep=" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return str(v)
    return str(v)


class ExcelReading:
    """The workbook part of :class:`engine.tabular.dataset.Dataset` (a mixin: ``self`` is the Dataset)."""

    def _sheet_rows(self) -> list[list[Any]]:
        wb = _workbook(self.path, self.name)
        try:
            names = list(wb.sheet_names)
            if not names:
                raise ValidationError(f"{self.name}: the workbook has no sheets")
            if self.sheet is None:
                self.sheet = names[0]
            elif self.sheet not in names:
                raise ValidationError(f"{self.name} has no sheet {self.sheet!r}; its sheets: "
                                      + ", ".join(repr(n) for n in names[:30]))
            self.sheets = names
            try:
                rows = wb.get_sheet_by_name(self.sheet).to_python(skip_empty_area=True)
            except Exception as exc:  # noqa: BLE001
                raise ValidationError(f"{self.name}: sheet {self.sheet!r} cannot be read "
                                      f"({str(exc).splitlines()[0][:160]})") from None
        finally:
            wb.close()
        while rows and not any(v not in (None, "") for v in rows[-1]):
            rows.pop()
        return rows

    def _excel_header(self) -> None:
        from engine.tabular.formats import MAX_COLUMNS, dedupe

        rows = self._sheet_rows()
        if not rows:
            raise ValidationError(f"{self.name}: sheet {self.sheet!r} is empty")
        header = [_cell_text(v) or "" for v in rows[0]]
        while header and not header[-1]:
            header.pop()
        if not header:
            raise ValidationError(f"{self.name}: sheet {self.sheet!r} has no header row (its first row is empty)")
        if len(header) > MAX_COLUMNS:
            raise ValidationError(f"{self.name} has {len(header):,} columns; at most {MAX_COLUMNS:,} are supported")
        self._raw_names = header
        self.columns = dedupe(header)

    def _excel_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        rows = self._sheet_rows()[1:]
        width = len(self.columns)
        for start in range(0, len(rows), chunk_rows):
            part = rows[start: start + chunk_rows]
            data = {c: pd.array([_cell_text(r[i]) if i < len(r) else None for r in part], dtype="str")
                    for i, c in enumerate(self.columns[:width])}
            self._read = int(self.size_bytes * min(1.0, (start + len(part)) / max(1, len(rows))))
            yield pd.DataFrame(data, index=pd.RangeIndex(start, start + len(part)), columns=self.columns)
