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


def send_import_job(job_id: int) -> None:
    """Run a bulk import job (labeling.services.import_jobs) on the worker once the caller commits."""
    from worker.import_tasks import run_import_job

    send_after_commit(run_import_job.si(job_id), f"import job {job_id}")


def send_webhook_delivery(delivery_id: int) -> None:
    """POST a webhook delivery (labeling.services.webhooks) from the worker once the caller commits."""
    from worker.webhook_tasks import deliver_webhook

    send_after_commit(deliver_webhook.si(delivery_id), f"webhook delivery {delivery_id}")
