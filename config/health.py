"""/healthz/: the database, the broker and the age of beat's last tick, each with a status.

HTTP 503 when the database or the broker fails (this web process cannot do its work); a stale or missing
beat tick only makes the overall status "degraded" (pages work; periodic catch-up does not); the tick is
recorded and read by ``core/heartbeats.py``. See docs/operations.md for what each check means.
"""
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from kombu import Connection

from core.heartbeats import last_beat_tick


def check_database() -> dict:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure is the answer, not a crash of the health check
        return {"status": "error", "error": type(error).__name__}
    return {"status": "ok", "ms": round(1000 * (time.monotonic() - started), 1)}


def check_broker() -> dict:
    started = time.monotonic()
    options = {**getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}), "socket_connect_timeout": 2}
    try:
        with Connection(settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=2) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=3)
    except Exception as error:
        return {"status": "error", "error": type(error).__name__}
    return {"status": "ok", "ms": round(1000 * (time.monotonic() - started), 1)}


def check_beat() -> dict:
    try:
        at = last_beat_tick()
    except Exception as error:
        return {"status": "error", "error": type(error).__name__}
    if at is None:
        return {"status": "missing", "age_seconds": None}
    age = (timezone.now() - at).total_seconds()
    return {"status": "ok" if age <= settings.TAGRANK_BEAT_STALE_SECONDS else "stale", "age_seconds": round(age, 1)}


@require_safe
def healthz(request):
    checks = {"database": check_database(), "broker": check_broker()}
    checks["beat"] = check_beat() if checks["database"]["status"] == "ok" else {"status": "unknown"}
    failed = any(checks[name]["status"] != "ok" for name in ("database", "broker"))
    status = "error" if failed else ("ok" if checks["beat"]["status"] == "ok" else "degraded")
    return JsonResponse({"status": status, "checks": checks}, status=503 if failed else 200)
