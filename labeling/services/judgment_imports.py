"""Import of judgments made elsewhere (another tool, an earlier study) from CSV or JSON Lines.

Each record names two images (by external id, or else by file name as imported), the winner (``a``,
``b``, ``tie``, or the winning image's reference), the rater (the user name of an active rater of the
project: not a manager, a deactivated member or account, or anyone outside it, and the error is the same
for all of those and for a name nobody has, so the import tells nobody which names exist) and the time
(ISO 8601; without a zone it is UTC; from 1970 to no later than a day from now); ``response_ms`` is
optional. Every line is checked first
and every bad line is reported with the file name and line number; only a file without errors is
stored, in one transaction. Each stored judgment gets a client key derived from its content, so
importing the same file again stores nothing twice (those lines are counted as already present).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import IO, Iterator

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.refusals import Refusal
from labeling.models import Comparison, Image, Membership, Project
from labeling.services.imports import ImportFileError
from labeling.services.side_files import json_lines
from labeling.services.image_stats import recount_image_stats

REQUIRED = ("image_a", "image_b", "winner", "rater", "time")
MAX_ERRORS_LISTED = 200
LOOKUP_CHUNK = 5000
EARLIEST = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
CLOCK_SKEW = timedelta(days=1)  # a judgment's time may be this far ahead of the server's clock, no further


class JudgmentFileInvalid(Refusal):
    """The file has bad lines; ``errors`` lists each one (file, line, reason). Nothing was stored."""

    code = "bad_lines"

    def __init__(self, errors: list[ImportFileError], total_errors: int):
        self.errors, self.total_errors = errors, total_errors
        listed = "; ".join(str(error) for error in errors[:5])
        more = f" (and {total_errors - 5} more)" if total_errors > 5 else ""
        super().__init__(f"{total_errors} bad line(s), nothing was imported: {listed}{more}")

    def details(self) -> dict:
        return {"total_errors": self.total_errors,
                "errors": [{"file": e.path, "line": e.line, "reason": e.reason} for e in self.errors]}


@dataclass
class JudgmentImportReport:
    imported: int = 0
    already_present: int = 0
    comparison_ids: list[int] = field(default_factory=list)


@dataclass
class _Record:
    line: int
    image_a: str
    image_b: str
    winner: str
    rater: str
    time: datetime
    response_ms: int | None


def _records(handle: IO[str], name: str, kind: str) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, raw record or None, error) for every non-empty line."""
    if kind == "csv":
        reader = csv.DictReader(handle)
        missing = [column for column in REQUIRED if column not in (reader.fieldnames or [])]
        if missing:
            yield 1, None, f"the header lacks {', '.join(missing)} (expected {', '.join(REQUIRED)}[, response_ms])"
            return
        for row in reader:
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue
            yield reader.line_num, row, ""
        return
    yield from json_lines(handle)


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f'"{key}" must be text')
    if "\x00" in value:
        raise ValueError(f'"{key}" contains a NUL character')
    return value.strip()


def _parse(number: int, record: dict) -> _Record:
    values = {key: _text(record, key) for key in REQUIRED}
    empty = [key for key, value in values.items() if not value]
    if empty:
        raise ValueError(f"missing {', '.join(empty)}")
    if values["image_a"] == values["image_b"]:
        raise ValueError("image_a and image_b are the same image")
    try:
        when = datetime.fromisoformat(values["time"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {values['time']!r} is not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt_timezone.utc)
    try:
        when = when.astimezone(dt_timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59-01:00
        raise ValueError(f"time {values['time']!r} is out of range") from None
    if not EARLIEST <= when <= timezone.now() + CLOCK_SKEW:
        raise ValueError(f"time {values['time']!r} is out of range (from 1970 to no later than a day from now)")
    response_ms = None
    raw_ms = _text(record, "response_ms")
    if raw_ms:
        try:
            response_ms = int(float(raw_ms))
        except ValueError:
            raise ValueError(f"response_ms {raw_ms!r} is not a number") from None
        if not 0 <= response_ms <= 2_147_483_647:
            raise ValueError("response_ms out of range")
    return _Record(number, values["image_a"], values["image_b"], values["winner"], values["rater"], when, response_ms)


def _image_ids(project: Project, references: set[str]) -> dict[str, int | str]:
    """Reference -> image id, or -> an error text (ambiguous). External ids are tried before file names."""
    found: dict[str, int | str] = {}
    refs = list(references)
    for field_name in ("external_id", "original_name"):
        todo = [ref for ref in refs if ref not in found]
        for start in range(0, len(todo), LOOKUP_CHUNK):
            chunk = todo[start:start + LOOKUP_CHUNK]
            matches: dict[str, list[int]] = {}
            for image_id, value in Image.objects.filter(project=project, **{f"{field_name}__in": chunk}).values_list(
                "id", field_name
            ):
                matches.setdefault(value, []).append(image_id)
            for value, ids in matches.items():
                found[value] = ids[0] if len(ids) == 1 else f"{len(ids)} images have {field_name.replace('original_name', 'file name')} {value!r}"
    return found


def _outcome(record: _Record) -> str:
    winner = record.winner.casefold()
    if winner in ("a", "b", "tie", "bad"):
        return winner
    if record.winner == record.image_a:
        return Comparison.Outcome.A
    if record.winner == record.image_b:
        return Comparison.Outcome.B
    raise ValueError(f"winner {record.winner!r} is neither a, b, tie, bad (both bad) nor one of the two images")


def client_key(image_a: int, image_b: int, outcome: str, when: datetime) -> str:
    digest = hashlib.sha256(f"{image_a}|{image_b}|{outcome}|{when.isoformat()}".encode()).hexdigest()
    return f"import-{digest[:56]}"


def import_judgments(project: Project, handle: IO, name: str, kind: str | None = None) -> JudgmentImportReport:
    """Validate every line of ``handle`` (text or bytes), then store all judgments or none.

    ``kind`` is csv or jsonl (default: from the file name's suffix). Raises JudgmentFileInvalid.
    """
    kind = kind or ("jsonl" if name.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv")
    if kind not in ("csv", "jsonl"):
        raise ValueError("kind must be csv or jsonl")
    if isinstance(handle.read(0), bytes):
        handle = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    errors: list[ImportFileError] = []
    total_errors = 0

    def bad(line: int, reason: str) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_ERRORS_LISTED:
            errors.append(ImportFileError(name, line, reason))

    records: list[_Record] = []
    try:
        for number, raw, error in _records(handle, name, kind):
            if error:
                bad(number, error)
                continue
            try:
                records.append(_parse(number, raw))
            except ValueError as exc:
                bad(number, str(exc))
    except UnicodeDecodeError:
        raise JudgmentFileInvalid([ImportFileError(name, None, "not UTF-8 text")], 1) from None
    except csv.Error as exc:
        raise JudgmentFileInvalid([ImportFileError(name, None, f"not valid CSV: {exc}")], 1) from None
    if not records and not total_errors:
        raise JudgmentFileInvalid([ImportFileError(name, None, "no judgments in the file")], 1)

    images = _image_ids(project, {r.image_a for r in records} | {r.image_b for r in records})
    usernames = {r.rater for r in records}
    raters = dict(
        get_user_model().objects.filter(
            username__in=usernames, is_active=True, memberships__project=project, memberships__is_active=True,
            memberships__role=Membership.Role.RATER,
        ).values_list("username", "id").distinct()
    )
    rows = []
    for record in records:
        try:
            ids = []
            for ref in (record.image_a, record.image_b):
                image_id = images.get(ref)
                if image_id is None:
                    raise ValueError(f"no image with external id or file name {ref!r} in this project")
                if isinstance(image_id, str):
                    raise ValueError(f"ambiguous image {ref!r}: {image_id}")
                ids.append(image_id)
            if ids[0] == ids[1]:
                raise ValueError("image_a and image_b are the same image")
            outcome = _outcome(record)
            rater_id = raters.get(record.rater)
            if rater_id is None:
                raise ValueError(f"rater {record.rater!r} is not an active rater of this project")
        except ValueError as exc:
            bad(record.line, str(exc))
            continue
        rows.append((record, ids[0], ids[1], outcome, rater_id))
    if total_errors:
        raise JudgmentFileInvalid(errors, total_errors)

    report = JudgmentImportReport()
    with transaction.atomic():
        keys = {}
        for record, a, b, outcome, rater_id in rows:
            keys.setdefault((rater_id, client_key(a, b, outcome, record.time)), (record, a, b, outcome))
        present = set()
        for rater_id in {rater for rater, _ in keys}:
            wanted = [key for rater, key in keys if rater == rater_id]
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                present.update(
                    (rater_id, key) for key in Comparison.objects.filter(
                        rater_id=rater_id, client_key__in=wanted[start:start + LOOKUP_CHUNK]
                    ).values_list("client_key", flat=True)
                )
        new = [
            Comparison(project=project, image_a_id=a, image_b_id=b, outcome=outcome, rater_id=rater_id,
                       client_key=key, response_ms=record.response_ms, created_at=record.time)
            for (rater_id, key), (record, a, b, outcome) in keys.items() if (rater_id, key) not in present
        ]
        times = [comparison.created_at for comparison in new]
        created = Comparison.objects.bulk_create(new, batch_size=2000)
        # bulk_create stamps auto_now_add fields with now; bulk_update writes the recorded times back.
        for comparison, when in zip(created, times):
            comparison.created_at = when
        Comparison.objects.bulk_update(created, ["created_at"], batch_size=2000)
        recount_image_stats(project)
    report.imported = len(created)
    report.already_present = len(rows) - len(created)
    report.comparison_ids = [comparison.pk for comparison in created]
    return report


__all__ = ["JudgmentFileInvalid", "JudgmentImportReport", "import_judgments", "client_key"]
