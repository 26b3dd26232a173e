"""Webhooks: tell outside systems that something happened in a project.

``emit`` records one delivery per active webhook of the project subscribed to the event and sends
each to the worker after the caller's transaction commits. ``deliver`` (run by the worker task) POSTs
the JSON body with ``X-Tagrank-Event``, ``X-Tagrank-Delivery`` and ``X-Tagrank-Signature:
sha256=<hex HMAC-SHA256 of the body with the webhook's secret>``; a non-2xx answer or a network error
is recorded on the delivery and raised so that the task retries with backoff. URLs go through
``core.outbound`` when registered and when delivered (a refused address fails the delivery
at once, without retries; redirects are not followed). The body:
``{"event": …, "delivery": id, "project": slug, "sent_at": …, "data": {…}}``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request

from django.db.models import F
from django.utils import timezone

from core import outbound
from labeling.models import Project, Webhook, WebhookDelivery
from labeling.services import rater_counts

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 6  # the first try and five retries


class DeliveryFailed(Exception):
    """The receiver did not take the delivery; the task retries."""


def new_secret() -> str:
    return secrets.token_hex(32)


def register(project: Project, url: str, events: list[str], *, user=None, target_judgments: int | None = None) -> Webhook:
    unknown = set(events) - set(Webhook.Event.values)
    if unknown or not events:
        raise ValueError(f"events must be some of {', '.join(Webhook.Event.values)}")
    if Webhook.Event.JUDGMENTS_TARGET_REACHED in events and not target_judgments:
        raise ValueError("judgments.target_reached needs target_judgments")
    outbound.check_url(url)
    return Webhook.objects.create(
        project=project, url=url, events=sorted(set(events)), secret=new_secret(), target_judgments=target_judgments,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def subscribed(project_id: int, event: str):
    # A JSON list membership test that works on PostgreSQL and SQLite alike: few webhooks per project.
    return [hook for hook in Webhook.objects.filter(project_id=project_id, is_active=True) if event in hook.events]


def emit(project: Project, event: str, data: dict) -> list[int]:
    """Queue ``event`` for every subscribed webhook of the project; returns the delivery ids."""
    ids = []
    for hook in subscribed(project.pk, event):
        delivery = WebhookDelivery.objects.create(webhook=hook, event=event, payload=data)
        ids.append(delivery.pk)
        from worker.dispatch import send_webhook_delivery

        send_webhook_delivery(delivery.pk)
    return ids


def body_of(delivery: WebhookDelivery) -> bytes:
    hook = delivery.webhook
    return json.dumps({
        "event": delivery.event, "delivery": delivery.pk, "project": hook.project.slug,
        "sent_at": delivery.created_at.isoformat(), "data": delivery.payload,
    }, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(delivery_id: int, *, last_attempt: bool = False) -> str:
    """POST one delivery. Returns its status; raises DeliveryFailed (to be retried) unless ``last_attempt``."""
    delivery = WebhookDelivery.objects.select_related("webhook__project").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery.status if delivery else "gone"
    body = body_of(delivery)
    request = urllib.request.Request(delivery.webhook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "tagrank-webhooks",
        "X-Tagrank-Event": delivery.event, "X-Tagrank-Delivery": str(delivery.pk),
        "X-Tagrank-Signature": signature(delivery.webhook.secret, body),
    })
    status, error, refused = None, "", False
    try:
        with outbound.open_url(request, timeout=TIMEOUT_SECONDS, follow_redirects=False) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except outbound.OutboundRefused as exc:
        error, refused = str(exc), True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    ok = status is not None and 200 <= status < 300
    now = timezone.now()
    new_status = (
        WebhookDelivery.Status.DELIVERED if ok
        else WebhookDelivery.Status.FAILED if last_attempt or refused else WebhookDelivery.Status.PENDING
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1, response_status=status, error=error[:2000], last_attempt_at=now,
        status=new_status, delivered_at=now if ok else None,
    )
    if not ok and not last_attempt and not refused:
        raise DeliveryFailed(error or f"HTTP {status}")
    return new_status


def check_judgment_targets() -> list[int]:
    """Announce once, per webhook, that its project reached the webhook's number of judgments."""
    announced = []
    waiting = Webhook.objects.filter(is_active=True, target_judgments__isnull=False, target_reached_at__isnull=True)
    for hook in waiting.select_related("project"):
        if Webhook.Event.JUDGMENTS_TARGET_REACHED not in hook.events:
            continue
        count = rater_counts.project_total(hook.project)  # the per-rater counters: no count of comparisons
        if count < hook.target_judgments:
            continue
        if not Webhook.objects.filter(pk=hook.pk, target_reached_at__isnull=True).update(target_reached_at=timezone.now()):
            continue  # another check announced it
        delivery = WebhookDelivery.objects.create(
            webhook=hook, event=Webhook.Event.JUDGMENTS_TARGET_REACHED,
            payload={"target": hook.target_judgments, "judgments": count},
        )
        from worker.dispatch import send_webhook_delivery

        send_webhook_delivery(delivery.pk)
        announced.append(delivery.pk)
    return announced


def import_finished(job) -> None:
    emit(job.project, Webhook.Event.IMPORT_FINISHED, {
        "import_job": job.pk, "status": job.status, "source_kind": job.source_kind, "source": job.source,
        "done": job.done, "skipped": job.skipped, "failed": job.failed, "error": job.error,
    })
