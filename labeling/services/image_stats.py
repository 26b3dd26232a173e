"""Per-image comparison counters (``ImageStats``), which the fallback of pair serving reads.

This module is their one owner: nothing else writes ``ImageStats`` (``tests/test_code_rules.py``). Each way
images and comparisons are written calls it from one place:

- one at a time through the ORM (the admin, a shell, the demo, tests): the ``post_save`` receivers in
  ``labeling/signals.py`` call ``images_added`` and ``comparison_stored``;
- the rating hot path (``labeling/services/comparisons.py``), which inserts with prepared SQL and sends no
  signal: ``comparison_stored`` after the insert, ``comparison_removed`` after an undo's delete;
- bulk loads (``bulk_create`` sends no signal): the image import calls ``images_added`` for its batch, the
  judgment import ``recount_image_stats`` once at the end;
- a load that bypassed all of these (a benchmark's ``COPY``): the fallback finds the missing rows and
  ``recount_image_stats(only_missing=True)`` fills them in.
"""
from __future__ import annotations

from django.db import connection
from django.db.models import Count, Q

from labeling.models import Comparison, Image, ImageStats, Project


def recount_image_stats(project: Project, *, only_missing: bool = False) -> int:
    """(Re)build the per-image comparison counters from the comparisons, e.g. after a bulk load.

    Returns the number of images whose row was written.
    """
    images = Image.objects.filter(project=project)
    if only_missing:
        images = images.filter(stats__isnull=True)
        if not images.exists():
            return 0
    counts: dict[int, int] = {}
    for field in ("image_a", "image_b"):
        for image_id, n in (
            Comparison.objects.filter(project=project).values_list(field).annotate(n=Count("id")).order_by()
        ):
            counts[image_id] = counts.get(image_id, 0) + n
    written = 0
    batch: list[ImageStats] = []

    def flush():
        ImageStats.objects.bulk_create(
            batch,
            batch_size=2000,
            update_conflicts=not only_missing,
            unique_fields=["image"] if not only_missing else None,
            update_fields=["comparison_count"] if not only_missing else None,
            ignore_conflicts=only_missing,
        )

    for image_id in list(images.values_list("id", flat=True)):
        batch.append(ImageStats(image_id=image_id, project=project, comparison_count=counts.get(image_id, 0)))
        if len(batch) >= 2000:
            flush()
            written += len(batch)
            batch = []
    if batch:
        flush()
        written += len(batch)
    return written


def images_added(project_id: int, image_ids) -> None:
    """Zeroed counters for new images, in the caller's transaction (one INSERT for a batch)."""
    ImageStats.objects.bulk_create(
        [ImageStats(image_id=image_id, project_id=project_id) for image_id in image_ids], ignore_conflicts=True
    )


def comparison_stored(comparison: Comparison) -> None:
    _count(comparison, +1)


def comparison_removed(comparison: Comparison) -> None:
    _count(comparison, -1)


def _count(comparison: Comparison, delta: int) -> None:
    """Add ``delta`` to both images' comparison counters, in the caller's transaction."""
    # One statement over both rows in id order: concurrent writers lock them in the same order. Raw, as it
    # runs on every judgment and compiling the ORM update costs more CPU than the database spends on it.
    ids = sorted({comparison.image_a_id, comparison.image_b_id})
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ImageStats._meta.db_table} SET comparison_count = CASE WHEN comparison_count + %s > 0 "
            f"THEN comparison_count + %s ELSE 0 END WHERE image_id IN ({', '.join(['%s'] * len(ids))})",
            [delta, delta, *ids],
        )
        updated = cursor.rowcount
    if updated < len(ids) and delta > 0:  # images written in bulk have no row yet: make it, counted from scratch
        for image_id in ids:
            if not ImageStats.objects.filter(image_id=image_id).exists():
                count = Comparison.objects.filter(Q(image_a_id=image_id) | Q(image_b_id=image_id)).count()
                ImageStats.objects.get_or_create(
                    image_id=image_id, defaults={"project_id": comparison.project_id, "comparison_count": count}
                )
