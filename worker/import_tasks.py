"""Bulk import jobs (queue ``default``): a thin task over ``labeling.services.import_jobs.run_job``.

acks_late: a worker that dies mid-job leaves the message to be redelivered, and the job resumes from
its recorded position (``run_job`` takes over a running job only once its heartbeat is stale).
"""
from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    name="tagrank.imports.run", queue="default", acks_late=True, soft_time_limit=12 * 3600, time_limit=12 * 3600 + 300,
    autoretry_for=(OperationalError, InterfaceError), retry_backoff=5, retry_backoff_max=300, max_retries=5,
)  # fmt: skip
def run_import_job(job_id: int) -> dict:
    from labeling.services import import_jobs

    return import_jobs.run_job(job_id)
