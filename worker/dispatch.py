"""Sending follow-up work from the web or a task, without letting a broker outage fail the caller."""
from __future__ import annotations

import logging

from django.db import transaction

log = logging.getLogger(__name__)


def send_after_commit(signature, what: str) -> None:
    """Send ``signature`` once the surrounding transaction commits (at once outside one), so the task
    sees what the caller wrote. A broker that is down loses only this nudge: the beat schedule catches
    up, so the error is logged, not raised."""

    def send():
        try:
            signature.apply_async()
        except Exception:  # noqa: BLE001 (any broker error: the schedule catches up)
            log.warning("could not enqueue %s; the schedule will catch up", what, exc_info=True)

    transaction.on_commit(send)


def send_pair_refill(project_id: int) -> None:
    """A pair-queue refill that the submit path found due; the caller holds the project's in-flight flag
    (modeling.services.pair_selection.claim_refill), which the task clears when it ends."""
    from worker.selection_tasks import refill_pair_queues

    send_after_commit(refill_pair_queues.si(project_id, claimed=True), f"a due pair refill for project {project_id}")
