"""The pair queue: ``PairCandidate`` rows, one per pair of images, with a priority and a slot count.

Active selection fills the queue from a Celery task (``enqueue_pairs``); pair serving only reads it
(``labeling/services/pair_serving.py``). Every lease of a pair goes through its candidate row, which
carries the pair's judgments, whether it is open and, once fully leased, ``full_until``;
``refresh_candidate`` recounts those after a lease ended or a judgment came or went.
"""
from __future__ import annotations

from typing import Iterable

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core import prepared_sql
from labeling.models import ImageStats, PairCandidate, PairLease, Project
from labeling.services import pair_sql


def enqueue_pairs(
    project: Project,
    scored_pairs: Iterable[tuple[int, int, float]],
    *,
    source: str = PairCandidate.Source.ACTIVE,
    replace: bool = False,
) -> int:
    """Put (image id, image id, priority) pairs in the project's queue; existing rows get the new priority.

    With ``replace``, open rows of the same source that are not in this batch and were never leased are
    dropped, so that a refill replaces the previous selection. Returns the number of pairs written.
    """
    rows = {}
    for first, second, priority in scored_pairs:
        if first == second:
            continue
        rows[pair_sql.ordered(int(first), int(second))] = float(priority)
    started = timezone.now()
    with transaction.atomic():
        PairCandidate.objects.bulk_create(
            [
                PairCandidate(project=project, image_low_id=low, image_high_id=high, priority=priority, source=source)
                for (low, high), priority in rows.items()
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["project", "image_low", "image_high"],
            update_fields=["priority", "source", "updated_at"],
        )
        if replace:
            # Rows this batch wrote have a fresh updated_at; older untouched, never-leased rows go. A row that
            # a rater is being leased right now is locked: skip it, or its new lease would point at nothing.
            stale = list(
                PairCandidate.objects.select_for_update(skip_locked=True)
                .filter(project=project, source=source, is_open=True, judgments=0, updated_at__lt=started)
                .values_list("pk", flat=True)
            )
            PairCandidate.objects.filter(pk__in=stale).exclude(
                Exists(PairLease.objects.filter(candidate=OuterRef("pk")))
            ).delete()
    return len(rows)


def open_queue_size(project: Project) -> int:
    """Open candidates in the queue: how a refill task decides whether it is time to refill."""
    return PairCandidate.objects.filter(project=project, is_open=True).count()


def reopen_for_overlap(project: Project) -> None:
    """After the project's overlap changed: reopen pairs that now want more judgments, close the rest."""
    PairCandidate.objects.filter(project=project, judgments__lt=project.overlap, is_open=False).update(
        is_open=True, full_until=None
    )
    PairCandidate.objects.filter(project=project, judgments__gte=project.overlap, is_open=True).update(
        is_open=False, full_until=None
    )


def refresh_candidate(candidate_id: int | None, project: Project) -> None:
    """Recount a candidate's slots after a lease ended or a judgment came or went (locks the row)."""
    if candidate_id is None:
        return
    rows = prepared_sql.execute(
        f"SELECT id, image_low_id, image_high_id FROM {pair_sql.CANDIDATES} "
        f"WHERE id = %s{pair_sql.lock_clause(skip_locked=False)}",
        [candidate_id],
    )
    if not rows:
        return
    _, low, high = rows[0]
    judged, _, live, earliest, _ = pair_sql.slots(project, candidate_id, low, high, None, timezone.now())
    pair_sql.store_slots(candidate_id, judged, live, earliest, project.overlap)


def pairs_remaining(project: Project) -> dict[str, int]:
    """What is left to judge in the queue, for the progress page (cheap counts)."""
    now = timezone.now()
    open_rows = PairCandidate.objects.filter(project=project, is_open=True)
    return {
        "queued_pairs": open_rows.count(),
        "fully_leased": open_rows.filter(full_until__gt=now).count(),
        "images_never_compared": ImageStats.objects.filter(project=project, comparison_count=0).count(),
        "live_leases": PairLease.objects.filter(
            project=project, state=PairLease.State.LIVE, expires_at__gt=now
        ).count(),
    }
