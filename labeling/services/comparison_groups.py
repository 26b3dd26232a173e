"""Comparison groups: a project may name a metadata key (``Project.group_key``, e.g. ``prompt_id``); every
pair served is then two images with the same value of it (images generated from the same prompt).

The group of an image is read from its metadata by the database, as text (``CAST(metadata ->> key AS TEXT)``,
the same expression on PostgreSQL and SQLite), so nothing is stored twice and a new key takes effect at once.
An image without the key (or with an empty value) is in no group; an image alone in its group has no partner.
Neither is ever served; the project page counts both (``group_summary``).

Who uses it: pair serving's fallback and gold pairs (``pair_serving.py``), the queue's guard
(``pair_sql.queue_candidate``) and the selection that fills the queue (``modeling/services/pair_selection.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, QuerySet, TextField
from django.db.models.expressions import RawSQL

from labeling.models import Image, Project


def sql_metadata_text(alias: str, key: str) -> tuple[str, list]:
    """The SQL expression of metadata ``key`` of image row ``alias`` as text (a group value, a generator
    name), and its parameter. ``key`` must pass ``GROUP_KEY_VALIDATOR``."""
    if connection.vendor == "postgresql":
        return f"CAST({alias}.metadata ->> %s::text AS TEXT)", [key]
    return f"CAST({alias}.metadata ->> %s AS TEXT)", [f'$."{key}"']  # the key is checked: GROUP_KEY_VALIDATOR


def grouped_images(project: Project) -> QuerySet:
    """The project's images that are not archived and have a group (annotated ``group``)."""
    # The same SQL as the hot path's (not the ORM's key transform, which reads JSON booleans differently).
    expression, params = sql_metadata_text(Image._meta.db_table, project.group_key)
    return (
        Image.objects.filter(project=project, archived_at=None)
        .annotate(group=RawSQL(expression, params, output_field=TextField()))
        .exclude(group__isnull=True)
        .exclude(group="")
    )


def metadata_values(project: Project, key: str) -> dict[int, str]:
    """{image id: the text of metadata ``key``} for the project's images that have a non-empty value."""
    expression, params = sql_metadata_text(Image._meta.db_table, key)
    rows = (
        Image.objects.filter(project=project)
        .annotate(value=RawSQL(expression, params, output_field=TextField()))
        .exclude(value__isnull=True)
        .exclude(value="")
        .values_list("id", "value")
    )
    return dict(rows)


def image_groups(project: Project) -> dict[int, str]:
    """{image id: group} for every servable image of a grouped project (images in a group of two or more)."""
    rows = list(grouped_images(project).values_list("id", "group"))
    sizes: dict[str, int] = {}
    for _, group in rows:
        sizes[group] = sizes.get(group, 0) + 1
    return {image_id: group for image_id, group in rows if sizes[group] > 1}


def members_of(project: Project, groups: set[str]) -> dict[str, list[int]]:
    """{group: ids of its images that are not archived} for the given groups."""
    found: dict[str, list[int]] = {}
    if not groups:
        return found
    rows = grouped_images(project).filter(group__in=sorted(groups)).values_list("id", "group")
    for image_id, group in rows:
        found.setdefault(group, []).append(image_id)
    return found


def same_group_gold(project: Project, gold_pairs: QuerySet) -> list[int]:
    """Ids of the gold pairs whose two images share a group (the others are not served in a grouped project)."""
    rows = list(gold_pairs.values_list("pk", "image_a_id", "image_b_id"))
    ids = {image_id for _, a, b in rows for image_id in (a, b)}
    groups = dict(grouped_images(project).filter(pk__in=ids).values_list("id", "group"))
    return [pk for pk, a, b in rows if groups.get(a) is not None and groups.get(a) == groups.get(b)]


@dataclass(frozen=True)
class GroupSummary:
    key: str
    groups: int  # groups with two or more images: the ones served
    grouped_images: int  # images in those groups
    singletons: int  # images alone in their group: never served
    without_key: int  # images without the key (or with an empty value): never served


def group_summary(project: Project) -> GroupSummary | None:
    """What the project page says about the groups (None when the project pairs across the whole project)."""
    if not project.group_key:
        return None
    sizes = list(grouped_images(project).values("group").annotate(n=Count("id")).values_list("n", flat=True))
    total = Image.objects.filter(project=project, archived_at=None).count()
    served = [n for n in sizes if n > 1]
    singletons = sum(1 for n in sizes if n == 1)
    return GroupSummary(
        key=project.group_key, groups=len(served), grouped_images=sum(served), singletons=singletons,
        without_key=total - sum(sizes),
    )
