"""Tasks that refill the pair queue with actively selected pairs (queue ``default``)."""
from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from worker.dispatch import send_after_commit

RETRY_OPTIONS = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(
    name="tagrank.selection.refill", queue="default", acks_late=True,
    soft_time_limit=5 * 60, time_limit=6 * 60, **RETRY_OPTIONS,
)  # fmt: skip
def refill_pair_queues(project_id: int | None = None, force: bool = False, claimed: bool = False) -> list[dict]:
    """Refill one project's pair queue, or (from beat) every project whose queue is due. ``claimed``: sent
    from the submit path, which found the refill due and holds the project's in-flight flag."""
    from labeling.models import Project
    from modeling.services.pair_selection import refill_due, refill_ended, refill_pair_queue

    projects = Project.objects.order_by("pk")
    if project_id is not None:
        projects = projects.filter(pk=project_id)
    try:
        return [refill_pair_queue(project) for project in projects if force or claimed or refill_due(project)]
    finally:
        if claimed and project_id is not None:
            refill_ended(project_id)


def enqueue_refill(project_id: int) -> None:
    """Refill the project's pair queue now (after commit) instead of at the next beat tick. A broker
    that is down loses only this nudge: the beat schedule refills due queues anyway."""
    send_after_commit(refill_pair_queues.si(project_id, force=True), f"a pair refill for project {project_id}")
