"""/healthz/ (database, broker, beat tick), beat's tick task and heartbeat file, media via X-Accel-Redirect."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Heartbeat


def health(client):
    response = client.get("/healthz/")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_without_a_beat_tick_health_is_degraded_but_up(client):
    code, body = health(client)
    assert code == 200 and body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["beat"] == {"status": "missing", "age_seconds": None}


@pytest.mark.django_db
def test_a_recent_tick_is_ok_and_an_old_one_stale(client, settings):
    from core.heartbeats import record_beat_tick

    record_beat_tick()
    code, body = health(client)
    assert code == 200 and body["status"] == "ok"
    assert body["checks"]["beat"]["status"] == "ok" and 0 <= body["checks"]["beat"]["age_seconds"] < 5
    Heartbeat.objects.filter(name="beat").update(at=timezone.now() - timedelta(seconds=settings.TAGRANK_BEAT_STALE_SECONDS + 60))
    code, body = health(client)
    assert code == 200 and body["status"] == "degraded" and body["checks"]["beat"]["status"] == "stale"
    assert body["checks"]["beat"]["age_seconds"] >= settings.TAGRANK_BEAT_STALE_SECONDS + 60


@pytest.mark.django_db
def test_an_unreachable_broker_is_503_within_seconds(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    started = time.monotonic()
    code, body = health(client)
    assert time.monotonic() - started < 10
    assert code == 503 and body["status"] == "error"
    assert body["checks"]["broker"]["status"] == "error" and body["checks"]["database"]["status"] == "ok"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_tick_runs_on_a_worker_and_is_in_the_schedule(live_worker):
    from worker import app
    from worker.health_tasks import beat_tick_task

    entry = app.conf.beat_schedule["health-beat-tick"]
    assert entry["task"] == beat_tick_task.name and entry["schedule"] <= 60
    assert not Heartbeat.objects.exists()
    beat_tick_task.apply_async()
    deadline = time.monotonic() + 60
    while not Heartbeat.objects.filter(name="beat").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (timezone.now() - Heartbeat.objects.get(name="beat").at).total_seconds() < 60


def test_beat_touches_its_heartbeat_file_on_every_loop(settings, tmp_path):
    from worker import app
    from worker.beat import HeartbeatScheduler

    assert app.conf.beat_scheduler == "worker.beat:HeartbeatScheduler"
    settings.TAGRANK_BEAT_HEARTBEAT_FILE = tmp_path / "beat-heartbeat"
    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    scheduler.setup_schedule()
    assert not settings.TAGRANK_BEAT_HEARTBEAT_FILE.exists()
    scheduler.tick()
    first = settings.TAGRANK_BEAT_HEARTBEAT_FILE.stat().st_mtime_ns
    time.sleep(0.05)
    scheduler.tick()
    assert settings.TAGRANK_BEAT_HEARTBEAT_FILE.stat().st_mtime_ns > first
    scheduler.close()


@pytest.mark.django_db
def test_media_is_handed_to_the_proxy_when_accel_redirect_is_set(client, settings, rater, images):
    settings.TAGRANK_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    client.force_login(rater)
    thumbnail = images[0].thumbnail
    response = client.get(thumbnail.url)
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == "/protected-media/" + thumbnail.name
    assert response["Content-Type"] == "image/webp"
    assert client.get("/media/thumbnails/no-such-file.webp").status_code == 404
    assert client.get("/media/../../etc/passwd").status_code == 404


@pytest.mark.django_db
def test_api_docs_load_nothing_from_a_cdn(client, rater):
    client.force_login(rater)
    for url, asset in (("/api/schema/swagger/", "swagger-ui-bundle.js"), ("/api/schema/redoc/", "redoc.standalone.js")):
        page = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in page and asset in page
        assert "cdn." not in page and "https://" not in page.replace("https://github.com", "")
