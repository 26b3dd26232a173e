"""Browsing a project's images (managers): filters, sorting and keyset pages, never a COUNT(*).

Filters: a tag, a score range (the active model version's mean), a comparison-count range, and a
metadata field (``key`` present, or ``key=value`` by JSON containment). Sorts: newest/oldest, score,
comparison count, each with the image id as the tie-breaker. A page is the first ``limit`` rows after
a cursor (the previous page's last sort value and id), read with one query of ``limit + 1`` rows, so
page 1,000 of 10^6 images costs what page 1 costs; there is no total, only "more".
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce

from core.refusals import Refusal
from labeling import json_safety
from labeling.models import Comparison, Image, ImageTag, Project, Tag
from modeling.models import ModelVersion

SORTS = {
    "newest": ("-id",), "oldest": ("id",),
    "score": ("score_mean", "id"), "-score": ("-score_mean", "-id"),
    "comparisons": ("comparison_count", "id"), "-comparisons": ("-comparison_count", "-id"),
}
MAX_LIMIT = 200


class BadBrowseRequest(Refusal):
    """A filter or cursor that cannot be used; the message says which."""

    code = "bad_browse_request"


@dataclass
class Filters:
    tag: str = ""
    score_min: float | None = None
    score_max: float | None = None
    comparisons_min: int | None = None
    comparisons_max: int | None = None
    metadata_key: str = ""
    metadata_value: str | None = None
    sort: str = "newest"
    cursor: str = ""
    limit: int = 50


@dataclass
class Page:
    images: list = field(default_factory=list)
    next_cursor: str | None = None
    model_version_id: int | None = None


def encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> list:
    try:
        values = json_safety.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise BadBrowseRequest("The cursor is not one this server gave out.") from None
    if not isinstance(values, list) or len(values) != 2 or not isinstance(values[1], int):
        raise BadBrowseRequest("The cursor is not one this server gave out.")
    if values[0] is not None and not isinstance(values[0], (int, float)):
        raise BadBrowseRequest("The cursor is not one this server gave out.")
    return values


def metadata_value(text: str):
    """``7`` matches the number 7, ``"7"`` or ``abc`` a string, ``true`` a boolean."""
    try:
        return json_safety.loads(text)
    except ValueError:
        return text


def browse(project: Project, filters: Filters) -> Page:
    if filters.sort not in SORTS:
        raise BadBrowseRequest(f"sort must be one of {', '.join(SORTS)}.")
    limit = max(1, min(int(filters.limit), MAX_LIMIT))
    version_id = (
        ModelVersion.objects.filter(project=project, is_active=True).values_list("pk", flat=True).first()
    )
    images = Image.objects.filter(project=project).annotate(
        active_score=FilteredRelation("scores", condition=Q(scores__model_version_id=version_id or 0)),
        score_mean=F("active_score__mean"),
        n_comparisons=Coalesce(F("stats__comparison_count"), 0),
        comparison_count=F("stats__comparison_count"),
    )
    if filters.tag:
        # By the tag's id, so that the check is one probe of the (image, tag) unique index per image.
        tag_id = Tag.objects.filter(project=project, name=Tag.normalise(filters.tag)).values_list("pk", flat=True).first()
        images = images.filter(Exists(ImageTag.objects.filter(image=OuterRef("pk"), tag_id=tag_id or 0)))
    if filters.score_min is not None:
        images = images.filter(score_mean__gte=filters.score_min)
    if filters.score_max is not None:
        images = images.filter(score_mean__lte=filters.score_max)
    if filters.comparisons_min is not None:
        images = images.filter(n_comparisons__gte=filters.comparisons_min)
    if filters.comparisons_max is not None:
        images = images.filter(n_comparisons__lte=filters.comparisons_max)
    if filters.metadata_key:
        if filters.metadata_value in (None, ""):
            images = images.filter(metadata__has_key=filters.metadata_key)
        else:
            value = metadata_value(filters.metadata_value)
            if connection.vendor == "postgresql":  # served by the GIN index on metadata
                images = images.filter(metadata__contains={filters.metadata_key: value})
            else:  # SQLite (the embedded default) has no JSON containment; the key is taken as data, not a lookup
                images = images.alias(metadata_field=KeyTransform(filters.metadata_key, "metadata")).filter(
                    metadata_field=value
                )
    order = SORTS[filters.sort]
    key = order[0].lstrip("-")
    descending = order[0].startswith("-")
    # Each sort walks an index in order: (model_version, mean, image) for scores, imagestats_fewest
    # (project, comparison_count, image) for counts. The counter is sorted on as stored, not through the
    # COALESCE, which no index serves: every image has its stats row (made with the image).
    if key == "score_mean":
        images = images.filter(score_mean__isnull=False)  # a score order lists the scored images
    if key == "comparison_count":
        images = images.filter(stats__project=project)
    if filters.cursor:
        value, last_id = decode_cursor(filters.cursor)
        if key == "id":
            images = images.filter(id__lt=last_id) if descending else images.filter(id__gt=last_id)
        elif descending:
            # The plain bound is the index range; the OR only settles ties on the boundary value.
            images = images.filter(**{f"{key}__lte": value}).filter(
                Q(**{f"{key}__lt": value}) | Q(**{key: value, "id__lt": last_id}))
        else:
            images = images.filter(**{f"{key}__gte": value}).filter(
                Q(**{f"{key}__gt": value}) | Q(**{key: value, "id__gt": last_id}))
    rows = list(images.order_by(*order)[: limit + 1])
    page = Page(images=rows[:limit], model_version_id=version_id)
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = encode_cursor([getattr(last, key) if key != "id" else None, last.pk])
    return page


def image_comparisons(image: Image, *, before: int | None = None, limit: int = 50) -> tuple[list, int | None]:
    """The comparisons an image took part in, newest first, ``limit`` per page after comparison ``before``."""
    comparisons = (
        Comparison.objects.filter(Q(image_a=image) | Q(image_b=image))
        .select_related("rater", "image_a", "image_b")
        .order_by("-id")
    )
    if before is not None:
        comparisons = comparisons.filter(id__lt=before)
    rows = list(comparisons[: limit + 1])
    return rows[:limit], (rows[limit - 1].pk if len(rows) > limit else None)
