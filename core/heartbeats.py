"""When a periodic signal last arrived (``core.models.Heartbeat``): beat's tick task records it on a worker
(``worker/health_tasks.py``), /healthz/ reads its age (``config/health.py``)."""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from core.models import Heartbeat

BEAT = "beat"


def record_beat_tick() -> None:
    Heartbeat.objects.update_or_create(name=BEAT, defaults={"at": timezone.now()})


def last_beat_tick() -> datetime | None:
    return Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()
