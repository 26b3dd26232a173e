"""Webhook deliveries and the judgment-target check (queue ``default``): thin tasks over
``labeling.services.webhooks``. A delivery the receiver refuses is retried with exponential backoff;
the last attempt marks it failed."""
from __future__ import annotations

from celery import shared_task

RETRY_BACKOFF_SECONDS = 10  # 10, 20, 40, 80, 160 s


@shared_task(bind=True, name="tagrank.webhooks.deliver", queue="default", acks_late=True, max_retries=5,
             soft_time_limit=60, time_limit=90)
def deliver_webhook(self, delivery_id: int) -> str:
    from labeling.services import webhooks

    last = self.request.retries >= self.max_retries
    try:
        return webhooks.deliver(delivery_id, last_attempt=last)
    except webhooks.DeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF_SECONDS * 2 ** self.request.retries) from None


@shared_task(name="tagrank.webhooks.check_targets", queue="default", acks_late=True, soft_time_limit=60,
             time_limit=90)
def check_judgment_targets() -> list[int]:
    from labeling.services import webhooks

    return webhooks.check_judgment_targets()
