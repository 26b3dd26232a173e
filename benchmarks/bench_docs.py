"""Writes a benchmark's results into its own section of docs/benchmarks.md, leaving the others as they are.

Imported as ``benchmarks.bench_docs`` (the scripts put the repository on sys.path; tests import some of them).
"""
from __future__ import annotations

import re
from pathlib import Path


def replace_docs_section(path: Path, heading: str, body: str) -> None:
    """Replace what stands under ``heading`` (a ``## `` line) up to the next ``## `` heading with ``body``."""
    text = path.read_text()
    pattern = re.compile(re.escape(heading) + r"\n.*?(?=\n## |\Z)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no '{heading}' section")
    path.write_text(pattern.sub(lambda _: heading + "\n\n" + body.strip() + "\n", text, count=1))
