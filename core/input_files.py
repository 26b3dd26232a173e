"""The error of a file handed in (a tags CSV, a metadata or judgments JSONL, an AVA list): it names file and line.

Plain Python (no Django), so that the ML command line reports a bad line the same way as the imports.
"""
from __future__ import annotations


class ImportFileError(ValueError):
    """A side file (tags CSV, metadata JSONL, AVA list) is malformed; the message names file and line."""

    def __init__(self, path, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
