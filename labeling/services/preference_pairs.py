"""Preference pairs for training (reward models, DPO): (prompt, chosen, rejected) rows, streamed in chunks.

Two units (``docs/exports.md``, "Preference pairs"):

- ``judgment``: one row per judgment, oldest first (keyset by comparison id, like every export);
- ``pair``: one row per pair of images, its judgments aggregated: the chosen image is the one more raters
  preferred. Pairs are taken image by image (keyset by the pair's lower image id, 500 images at a time, each
  chunk read through the comparison table's image indexes), so memory stays flat here too.

A preference gives ``label`` ``chosen``; ties and "both bad" are left out unless asked for, and then come as
``tie`` / ``both_bad`` with the left image as ``chosen``. Judgments of raters excluded from training are
left out. ``agreement`` (projects with overlap > 1): the share of the pair's judgments that gave this row's
answer. In Parquet the image bytes can be added (``with_image_bytes``); chunks are then small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import F

from core.streaming import Column, keyset_chunks
from labeling.models import Comparison, Image, Membership, Project
from labeling.services.criteria import answers_of, primary

CRITERION = "overall"  # the label of a one-question project's answers: the overall preference
IMAGE_CHUNK = 500  # images per chunk of the per-pair unit
BYTES_CHUNK = 32  # rows per chunk when the image bytes are included
LABELS = {"a": "chosen", "b": "chosen", "tie": "tie", "bad": "both_bad"}

_SIDE_COLUMNS = ["image_id", "external_id", "file_name", "url", "prompt"]


def columns(unit: str, with_image_bytes: bool) -> list[Column]:
    first = [Column("judgment_id", "int")] if unit == "judgment" else [Column("pair_key")]
    sides = [
        Column(f"{side}_{name}", "int" if name == "image_id" else "str") for side in ("chosen", "rejected")
        for name in _SIDE_COLUMNS
    ]
    middle = [Column("prompt"), *sides, Column("label"), Column("criterion")]
    if unit == "judgment":
        rest = [Column("rater_id", "int"), Column("rater"), Column("created_at", "time"),
                Column("pair_judgments", "int"), Column("agreement", "float")]
    else:
        rest = [Column("judgments", "int"), Column("chosen_votes", "int"), Column("rejected_votes", "int"),
                Column("ties", "int"), Column("both_bad", "int"), Column("agreement", "float")]
    extra = [Column("chosen_image_bytes", "bytes"), Column("rejected_image_bytes", "bytes")] if with_image_bytes else []
    return [*first, *middle, *rest, *extra]


@dataclass(frozen=True)
class PreferenceRequest:
    unit: str = "judgment"  # or "pair"
    include_ties: bool = False
    include_both_bad: bool = False
    with_image_bytes: bool = False
    base_url: str = ""  # prepended to media URLs (the request's host), "" for relative URLs
    criterion: str | None = None  # several criteria: whose answers (None: the comparison's outcome, the primary)


def _judgments(project: Project):
    excluded = Membership.objects.filter(project=project, excluded_from_training=True).values("user_id")
    return Comparison.objects.filter(project=project).exclude(rater_id__in=excluded)


def _allowed_outcomes(request: PreferenceRequest) -> list[str]:
    allowed = [Comparison.Outcome.A, Comparison.Outcome.B]
    if request.include_ties:
        allowed.append(Comparison.Outcome.TIE)
    if request.include_both_bad:
        allowed.append(Comparison.Outcome.BOTH_BAD)
    return [str(value) for value in allowed]


class _Images:
    """Per-chunk image details (external id, file name, URL, prompt; bytes on request), one query per chunk."""

    def __init__(self, request: PreferenceRequest):
        self.request = request

    def load(self, ids) -> dict[int, tuple]:
        rows = Image.objects.filter(pk__in=set(ids)).values_list("id", "external_id", "original_name", "file", "caption")
        found = {}
        for image_id, external_id, name, stored, caption in rows:
            found[image_id] = (image_id, external_id, name, self.request.base_url + default_storage.url(stored), caption)
        return found

    def payload(self, ids) -> dict[int, bytes]:
        stored = dict(Image.objects.filter(pk__in=set(ids)).values_list("id", "file"))
        data = {}
        for image_id, name in stored.items():
            with default_storage.open(name, "rb") as handle:
                data[image_id] = handle.read()
        return data


def criterion_label(project: Project, request: PreferenceRequest) -> str:
    return request.criterion or primary(project) or CRITERION


def _with_answers(chunk: list[tuple], criterion: str | None, allowed: list[str]) -> list[tuple]:
    """Rows (id, a, b, outcome, ...) with the outcome replaced by the answer to ``criterion``; rows without one,
    or with an answer not asked for, left out. Without a criterion the chunk as it is."""
    if criterion is None:
        return chunk
    answers = answers_of([row[0] for row in chunk], criterion)
    return [(row[0], row[1], row[2], answers[row[0]], *row[4:]) for row in chunk if answers.get(row[0]) in allowed]


def judgment_chunks(project: Project, request: PreferenceRequest) -> Iterator[list[tuple]]:
    """One row per judgment (``columns("judgment", ...)``), oldest first."""
    images = _Images(request)
    allowed = _allowed_outcomes(request)
    judgments = _judgments(project)
    if request.criterion is None:
        judgments = judgments.filter(outcome__in=allowed)
    label = criterion_label(project, request)
    fields = ["id", "image_a_id", "image_b_id", "outcome", "rater_id", "rater__username", "created_at"]
    chunk_size = BYTES_CHUNK if request.with_image_bytes else 2000
    for chunk in keyset_chunks(judgments, fields, chunk_size=chunk_size):
        chunk = _with_answers(chunk, request.criterion, allowed)
        if not chunk:
            continue
        ids = [image_id for row in chunk for image_id in (row[1], row[2])]
        details = images.load(ids)
        payload = images.payload(ids) if request.with_image_bytes else {}
        stats = _pair_stats(project, {_key(row[1], row[2]) for row in chunk}, request.criterion) if project.overlap > 1 else {}
        rows = []
        for comparison_id, a, b, outcome, rater_id, rater, created_at in chunk:
            chosen, rejected = (b, a) if outcome == Comparison.Outcome.B else (a, b)
            votes = stats.get(_key(a, b))
            agreement = None
            if votes is not None and votes["n"] > 1:
                same = votes[chosen] if outcome in ("a", "b") else votes[outcome]
                agreement = same / votes["n"]
            row = (
                comparison_id, details[chosen][4], *details[chosen], *details[rejected], LABELS[outcome], label,
                rater_id, rater, created_at, votes["n"] if votes else None, agreement,
            )
            if request.with_image_bytes:
                row = (*row, payload.get(chosen), payload.get(rejected))
            rows.append(row)
        yield rows


def _key(first: int, second: int) -> tuple[int, int]:
    return (first, second) if first < second else (second, first)


def _pair_stats(project: Project, pairs: set[tuple[int, int]], criterion: str | None = None) -> dict[tuple[int, int], dict]:
    """Votes of every judgment (all outcomes) of the given pairs: {pair: {image id: wins, "tie", "bad", "n"}}."""
    if not pairs:
        return {}
    # The pairs as a VALUES list joined in both orders: each side an index look-up on image_a per pair.
    table = Comparison._meta.db_table
    values = ", ".join(["(%s, %s)"] * len(pairs))
    excluded = list(Membership.objects.filter(project=project, excluded_from_training=True).values_list("user_id", flat=True))
    skip = f" AND c.rater_id NOT IN ({', '.join(['%s'] * len(excluded))})" if excluded else ""
    sql = f"""WITH v(low, high) AS (VALUES {values})
        SELECT c.id, c.image_a_id, c.image_b_id, c.outcome FROM v JOIN {table} c ON c.image_a_id = v.low AND c.image_b_id = v.high
        WHERE c.project_id = %s{skip}
        UNION ALL
        SELECT c.id, c.image_a_id, c.image_b_id, c.outcome FROM v JOIN {table} c ON c.image_a_id = v.high AND c.image_b_id = v.low
        WHERE c.project_id = %s{skip}"""
    flat = [image_id for pair in sorted(pairs) for image_id in pair]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*flat, project.pk, *excluded, project.pk, *excluded])
        rows = cursor.fetchall()
    rows = _with_answers(rows, criterion, ["a", "b", "tie", "bad"])
    return _tally([row[1:] for row in rows], pairs)


def _tally(rows, pairs=None) -> dict[tuple[int, int], dict]:
    stats: dict[tuple[int, int], dict] = {}
    for a, b, outcome in rows:
        key = _key(a, b)
        if pairs is not None and key not in pairs:
            continue
        votes = stats.setdefault(key, {key[0]: 0, key[1]: 0, "tie": 0, "bad": 0, "n": 0})
        votes["n"] += 1
        if outcome == Comparison.Outcome.A:
            votes[a] += 1
        elif outcome == Comparison.Outcome.B:
            votes[b] += 1
        else:
            votes[outcome] += 1
    return stats


def pair_chunks(project: Project, request: PreferenceRequest) -> Iterator[list[tuple]]:
    """One row per judged pair of images (``columns("pair", ...)``), by the pair's lower image id."""
    images = _Images(request)
    image_ids = Image.objects.filter(project=project)
    for chunk in keyset_chunks(image_ids, ["id"], chunk_size=IMAGE_CHUNK):
        ids = [row[0] for row in chunk]
        judgments = _judgments(project)
        rows = list(judgments.filter(image_a_id__in=ids, image_b_id__gt=F("image_a_id")).values_list(
            "id", "image_a_id", "image_b_id", "outcome"))
        rows += list(judgments.filter(image_b_id__in=ids, image_a_id__gt=F("image_b_id")).values_list(
            "id", "image_a_id", "image_b_id", "outcome"))
        stats = _tally([row[1:] for row in _with_answers(rows, request.criterion, ["a", "b", "tie", "bad"])])
        out = []
        for (low, high), votes in sorted(stats.items()):
            if votes[low] != votes[high]:
                chosen, rejected = (low, high) if votes[low] > votes[high] else (high, low)
                label = "chosen"
            else:
                chosen, rejected = low, high
                label = "both_bad" if votes["bad"] > votes["tie"] else "tie"
                if (label == "tie" and not request.include_ties) or (label == "both_bad" and not request.include_both_bad):
                    continue
            out.append((chosen, rejected, label, votes))
        if not out:
            continue
        for start in range(0, len(out), BYTES_CHUNK if request.with_image_bytes else len(out)):
            part = out[start:start + (BYTES_CHUNK if request.with_image_bytes else len(out))]
            needed = [image_id for chosen, rejected, _, _ in part for image_id in (chosen, rejected)]
            details = images.load(needed)
            payload = images.payload(needed) if request.with_image_bytes else {}
            rows_out = []
            for chosen, rejected, label, votes in part:
                top = votes[chosen] if label == "chosen" else votes["tie" if label == "tie" else "bad"]
                row = (
                    f"{min(chosen, rejected)}-{max(chosen, rejected)}", details[chosen][4], *details[chosen],
                    *details[rejected], label, criterion_label(project, request), votes["n"], votes[chosen],
                    votes[rejected], votes["tie"],
                    votes["bad"], top / votes["n"],
                )
                if request.with_image_bytes:
                    row = (*row, payload.get(chosen), payload.get(rejected))
                rows_out.append(row)
            yield rows_out
