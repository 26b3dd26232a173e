"""CSV cells that a spreadsheet would run as a formula are written with a leading apostrophe.

A cell beginning with ``= + - @``, a tab or a carriage return (the OWASP list) can run as a formula
when a manager opens an export in a spreadsheet, e.g. a rater's tag ``=HYPERLINK(...)``. Numbers,
including negative ones written as text, are left as they are. Hand-written rather than a library:
defusedcsv, the maintained one, leaves a leading tab or CR alone and rewrites ``|`` inside cells.

Plain Python (no Django), so the ML command line (modeling/ml/cli.py) uses it too.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)  # each start is one character
# ASCII digits only, as a spreadsheet reads a number (and as the PostgreSQL export path tests it, core/pg_export.py).
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def neutralise(value: Any) -> Any:
    """``value`` as it may go into a CSV cell: text that could run as a formula gets a leading ``'``."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS) or _NUMBER.fullmatch(value):
        return value
    return "'" + value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    """``neutralise`` of every cell, inlined: exports call it for millions of cells, most of them numbers."""
    return [
        "'" + value
        if isinstance(value, str) and value[:1] in _FORMULA_FIRST and not _NUMBER.fullmatch(value)
        else value
        for value in row
    ]


def restore(value: str) -> str:
    """What ``neutralise`` wrote, read back (for importers that read Tagrank's own CSV)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


class SafeWriter:
    """``csv.writer`` whose cells are neutralised, and whose cells holding a carriage return are quoted.

    ``csv`` quotes a cell for the characters of its line terminator only: with ``lineterminator="\n"`` a
    lone CR would be written bare, and readers (Excel, Python's own csv) take it for a line break. Rows
    are written to a scratch buffer first; in the rare chunk that holds a CR, each row is written again
    with a terminator that contains one (so its CR cells are quoted, as PostgreSQL's COPY quotes them)."""

    def __init__(self, handle, *args, **kwargs):
        self._handle = handle
        self._writer = csv.writer(handle, *args, **kwargs)
        self._terminator = self._writer.dialect.lineterminator
        if "\r" not in self._terminator:
            self._scratch = io.StringIO()
            self._scratch_writer = csv.writer(self._scratch, *args, **kwargs)
            self._cr_writer = csv.writer(self._scratch, *args, **{**kwargs, "lineterminator": "\r\n"})

    def writerow(self, row):
        return self.writerows([row])

    def writerows(self, rows):
        rows = [neutralise_row(row) for row in rows]
        if "\r" in self._terminator:
            return self._writer.writerows(rows)
        text = self._written(self._scratch_writer, rows)
        if "\r" in text:
            text = "".join(self._written(self._cr_writer, [row])[:-2] + self._terminator for row in rows)
        return self._handle.write(text)

    def _written(self, writer, rows) -> str:
        self._scratch.seek(0)
        self._scratch.truncate()
        writer.writerows(rows)
        return self._scratch.getvalue()


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose cells are neutralised (the header too)."""

    def __init__(self, handle, fieldnames, restval="", extrasaction="raise", dialect="excel", *args, **kwargs):
        super().__init__(handle, fieldnames, restval, extrasaction, dialect, *args, **kwargs)
        self.writer = SafeWriter(handle, dialect, *args, **kwargs)


def writer(handle, *args, **kwargs) -> SafeWriter:
    return SafeWriter(handle, *args, **kwargs)
