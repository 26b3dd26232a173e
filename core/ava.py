"""The one reader of the AVA dataset's files, for the import (``import_ava``) and the ML command line
(``python -m modeling convert-ava``). Plain Python (no Django).

AVA.txt: per line an index, the image id, ten vote counts (scores 1..10), two semantic tag ids (0: none) and a
challenge id. tags.txt: ``id name`` per line. A malformed line raises ``ImportFileError`` naming file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.input_files import ImportFileError


@dataclass
class AvaRow:
    line: int
    image_id: str
    votes: list[int]
    semantic_tag_ids: tuple[int, int]
    challenge_id: int


def read_ava_list(path: Path) -> Iterator[AvaRow]:
    """AVA.txt: index, image id, ten vote counts (scores 1..10), two semantic tag ids, challenge id."""
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 15:
                raise ImportFileError(path, line_number, f"expected 15 columns, found {len(fields)}")
            try:
                numbers = [int(f) for f in fields]
            except ValueError:
                raise ImportFileError(path, line_number, "every column must be an integer") from None
            votes = numbers[2:12]
            if any(v < 0 for v in votes) or sum(votes) == 0:
                raise ImportFileError(path, line_number, "vote counts must be non-negative with at least one vote")
            yield AvaRow(line_number, fields[1], votes, (numbers[12], numbers[13]), numbers[14])


def read_ava_tags(path: Path) -> dict[int, str]:
    """tags.txt: ``id name`` per line (the name may contain spaces)."""
    names: dict[int, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise ImportFileError(path, line_number, "expected `id name`")
            names[int(parts[0])] = parts[1].strip()
    return names
