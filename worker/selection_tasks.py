"""Tasks that refill the pair queue with actively selected pairs (queue ``default``)."""
from __future__ import annotations

from celery import shared_task

from worker.retry import RETRYING


@shared_task(
    name="tagrank.selection.refill", queue="default",
    soft_time_limit=5 * 60, time_limit=6 * 60, **RETRYING,
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

