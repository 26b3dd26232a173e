"""Writes a benchmark's results into its own section of docs/benchmarks.md, leaving the others as they are.

Imported by file name, ``from bench_docs import replace_docs_section``, as every helper (see bench_setup.py).
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
