"""The side files of an image import, read whole before any image is stored: a tags CSV and a metadata JSON
Lines file; and the JSON Lines reader the judgment import uses too. A bad line raises ``ImportFileError``
naming file and line."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Iterator

from core import spreadsheet_safety
from core.input_files import ImportFileError
from labeling import json_safety
from labeling.models import Tag


def read_tags_csv(path: Path) -> dict[str, list[str]]:
    """``file,tags`` rows; tags separated by ``;`` or ``|``. A file may appear on several rows."""
    mapping: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for line_number, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line_number == 1 and row[0].strip().lower() in {"file", "filename", "file_name", "image"}:
                continue
            if len(row) < 2:
                raise ImportFileError(path, line_number, "expected `file,tags` (tags separated by ; or |)")
            file_name = row[0].strip()
            if not file_name:
                raise ImportFileError(path, line_number, "the file name is empty")
            tag_cells = ",".join(row[1:]).replace("|", ";").split(";")
            names = [Tag.normalise(spreadsheet_safety.restore(t.strip())) for t in tag_cells if t.strip()]
            if any(len(n) > 100 for n in names):
                raise ImportFileError(path, line_number, "a tag is longer than 100 characters")
            mapping.setdefault(file_name, []).extend(names)
    return mapping


PROMPT_KEYS = ("prompt", "caption")


def json_lines(handle: Iterable[str]) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, object, "") for each non-empty JSON Lines line, or (line number, None, why) for a bad one."""
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = json_safety.loads(line)
        except json.JSONDecodeError as exc:
            yield line_number, None, f"invalid JSON: {exc.msg}"
            continue
        if not isinstance(record, dict):
            yield line_number, None, "each line must be a JSON object"
            continue
        yield line_number, record, ""


def read_metadata_jsonl(path: Path) -> dict[str, dict]:
    """One JSON object per line with ``file``; ``prompt``/``caption``, ``external_id`` and ``tags`` are
    taken apart, everything else (cfg_scale, seed, sampler, ...) becomes the image's metadata."""
    mapping: dict[str, dict] = {}
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, record, error in json_lines(handle):
            if error:
                raise ImportFileError(path, line_number, error)
            file_name = record.pop("file", None) or record.pop("file_name", None)
            if not isinstance(file_name, str) or not file_name.strip():
                raise ImportFileError(path, line_number, 'missing "file" (the image file name)')
            tags = record.pop("tags", [])
            if isinstance(tags, str):
                tags = tags.replace("|", ";").split(";")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ImportFileError(path, line_number, '"tags" must be a list of strings')
            caption = ""
            for key in PROMPT_KEYS:
                if key in record:
                    caption = str(record.pop(key))
                    break
            external_id = str(record.pop("external_id", "") or "")
            mapping[file_name.strip()] = {
                "caption": caption,
                "external_id": external_id,
                "tags": [Tag.normalise(t) for t in tags if t.strip()],
                "metadata": record,
            }
    return mapping
