"""CSV cells that a spreadsheet would run as a formula are written with a leading apostrophe.

A cell beginning with ``= + - @``, a tab or a carriage return (the OWASP list) can run as a formula
when a manager opens an export in a spreadsheet, e.g. a rater's tag ``=HYPERLINK(...)``. Numbers,
including negative ones written as text, are left as they are. Hand-written rather than a library:
defusedcsv, the maintained one, leaves a leading tab or CR alone and rewrites ``|`` inside cells.

Plain Python (no Django), so the ML command line (modeling/ml/cli.py) uses it too.
"""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)  # each start is one character
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


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
    """``csv.writer`` whose cells are neutralised."""

    def __init__(self, handle, *args, **kwargs):
        self._writer = csv.writer(handle, *args, **kwargs)

    def writerow(self, row):
        return self._writer.writerow(neutralise_row(row))

    def writerows(self, rows):
        return self._writer.writerows(neutralise_row(row) for row in rows)


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose cells are neutralised (the header too)."""

    def __init__(self, handle, fieldnames, restval="", extrasaction="raise", dialect="excel", *args, **kwargs):
        super().__init__(handle, fieldnames, restval, extrasaction, dialect, *args, **kwargs)
        self.writer = SafeWriter(handle, dialect, *args, **kwargs)


def writer(handle, *args, **kwargs) -> SafeWriter:
    return SafeWriter(handle, *args, **kwargs)
