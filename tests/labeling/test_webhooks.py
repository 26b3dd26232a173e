"""Webhooks: registration, the four events, signed delivery to a local HTTP server, retries, the log."""
import hashlib
import hmac
import http.server
import json
import threading
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core import outbound
from labeling.models import Comparison, Webhook, WebhookDelivery
from labeling.services import webhooks

ALL_EVENTS = list(Webhook.Event.values)


class Receiver:
    """A local HTTP server (127.0.0.1, a free port) that records POSTs and answers with scripted codes."""

    def __init__(self, codes=()):
        self.codes, self.received = list(codes), []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def receiver():
    made = []

    def start(codes=()):
        made.append(Receiver(codes))
        return made[-1]

    yield start
    for server in made:
        server.stop()


@pytest.fixture
def private_network_allowed(settings):
    """These tests deliver to servers on 127.0.0.1 (or never resolve their made-up hosts): allow it explicitly."""
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = True


def verify(hook: Webhook, headers: dict, body: bytes) -> dict:
    expected = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Tagrank-Signature"], expected)
    return json.loads(body)


@pytest.mark.django_db
def test_a_delivery_is_signed_and_logged(project, receiver, private_network_allowed):
    server = receiver()
    hook = webhooks.register(project, server.url, ["import.finished"])
    other = webhooks.register(project, server.url, ["training.failed"])
    ids = webhooks.emit(project, "import.finished", {"import_job": 1, "done": 3})
    assert len(ids) == 1 and not WebhookDelivery.objects.filter(webhook=other).exists()
    assert webhooks.deliver(ids[0]) == "delivered"
    headers, body = server.received[0]
    payload = verify(hook, headers, body)
    assert payload["event"] == "import.finished" and payload["project"] == "test-project"
    assert payload["data"] == {"import_job": 1, "done": 3} and headers["X-Tagrank-Event"] == "import.finished"
    delivery = WebhookDelivery.objects.get(pk=ids[0])
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert webhooks.deliver(ids[0]) == "delivered" and len(server.received) == 1  # a duplicate message: not resent
    tampered = body.replace(b'"done":3', b'"done":4')
    with pytest.raises(AssertionError):
        verify(hook, headers, tampered)


@pytest.mark.django_db
def test_refused_deliveries_are_retried_then_marked_failed(project, receiver, private_network_allowed):
    from worker.webhook_tasks import deliver_webhook

    server = receiver([500, 503])
    webhooks.register(project, server.url, ["import.finished"])
    first = webhooks.emit(project, "import.finished", {})[0]
    deliver_webhook.apply(args=[first])  # eager: the retries run at once
    delivery = WebhookDelivery.objects.get(pk=first)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 3, 200)
    dead = receiver([500] * 10)
    webhooks.register(project, dead.url, ["training.failed"])
    second = webhooks.emit(project, "training.failed", {})[0]
    deliver_webhook.apply(args=[second])
    delivery = WebhookDelivery.objects.get(pk=second)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 6, 500)
    assert len(dead.received) == 6


@pytest.mark.django_db
def test_the_judgment_target_is_announced_once(project, images, rater, private_network_allowed):
    hook = webhooks.register(project, "http://127.0.0.1:9/none", ["judgments.target_reached"], target_judgments=2)
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="1")
    assert webhooks.check_judgment_targets() == []
    Comparison.objects.create(project=project, image_a=images[2], image_b=images[3], outcome="b", rater=rater,
                              client_key="2")
    announced = webhooks.check_judgment_targets()
    assert len(announced) == 1 and webhooks.check_judgment_targets() == []
    assert WebhookDelivery.objects.get(pk=announced[0]).payload == {"target": 2, "judgments": 2}
    hook.refresh_from_db()
    assert hook.target_reached_at is not None


@pytest.mark.django_db
def test_model_loop_events(project, monkeypatch, private_network_allowed):
    from modeling.models import ModelVersion, TrainingRun
    from modeling.services import scoring
    from modeling.services.training_runs import fail_dead_runs

    monkeypatch.setattr("worker.dispatch.send_webhook_delivery", lambda delivery_id: None)
    webhooks.register(project, "http://127.0.0.1:9/none", ["model_version.activated", "training.failed"])
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", status="scoring",
                                          metrics={"pairwise_accuracy": 0.8})
    assert scoring.activate(version)  # the one path every activation takes (training, promotion, rollback)
    run = TrainingRun.objects.create(project=project, status="running",
                                     heartbeat_at=timezone.now() - timedelta(days=1))
    assert fail_dead_runs(project) == [run.pk]
    logged = {d.event: d.payload for d in WebhookDelivery.objects.all()}
    assert logged["model_version.activated"]["model_version"] == version.pk
    assert logged["model_version.activated"]["metrics"] == {"pairwise_accuracy": 0.8}
    assert logged["training.failed"]["training_run"] == run.pk
    assert logged["training.failed"]["failure_kind"] == "worker_lost"


@pytest.mark.django_db
def test_an_import_job_announces_its_end(project, manager, settings, tmp_path, private_network_allowed):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    from labeling.services import import_jobs
    from tests.conftest import make_image_bytes

    settings.TAGRANK_IMPORT_ARCHIVE_DIR = tmp_path
    webhooks.register(project, "http://127.0.0.1:9/none", ["import.finished"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jpg", make_image_bytes(fmt="JPEG", seed=1))
    job = import_jobs.create_job(project, manager, archive=SimpleUploadedFile("a.zip", buffer.getvalue()))
    import_jobs.run_job(job.pk)
    payload = WebhookDelivery.objects.get(event="import.finished").payload
    assert payload["import_job"] == job.pk and payload["status"] == "succeeded" and payload["done"] == 1


@pytest.mark.django_db
def test_api_and_page(api, client, project, manager, rater, receiver, private_network_allowed):
    base = "/api/v1/projects/test-project/webhooks/"
    assert api(rater).get(base).status_code == 403
    bad = api(manager).post(base, {"url": "http://x.test/", "events": ["judgments.target_reached"]}, format="json")
    assert bad.status_code == 400 and "target_judgments" in bad.json()
    created = api(manager).post(base, {"url": "http://x.test/h", "events": ["import.finished"]}, format="json").json()
    assert len(created["secret"]) == 64 and created["events"] == ["import.finished"]
    WebhookDelivery.objects.create(webhook_id=created["id"], event="import.finished", payload={}, status="failed",
                                   attempts=6, response_status=500)
    log = api(manager).get(f"{base}{created['id']}/deliveries/").json()
    assert log[0]["status"] == "failed" and log[0]["attempts"] == 6
    client.force_login(manager)
    page = client.get(reverse("project-webhooks", args=[project.slug])).content.decode()
    assert "http://x.test/h" in page and 'data-status="failed"' in page
    client.post(reverse("project-webhooks", args=[project.slug]),
                {"url": "http://y.test/h", "events": ["training.failed"]})
    assert Webhook.objects.filter(url="http://y.test/h").exists()
    assert api(manager).delete(f"{base}{created['id']}/").status_code == 204
    assert not WebhookDelivery.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers(project, live_worker, receiver, private_network_allowed):
    server = receiver()
    hook = webhooks.register(project, server.url, ["import.finished"])
    webhooks.emit(project, "import.finished", {"import_job": 7})
    deadline = time.monotonic() + 60
    while not server.received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.received, live_worker.log()
    assert verify(hook, *server.received[0])["data"] == {"import_job": 7}


@pytest.mark.django_db
def test_private_and_loopback_urls_are_refused_when_registered(api, client, project, manager, settings, fake_dns):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    fake_dns({"intranet.example": "10.0.0.1", "public.example": "93.184.215.14"})
    for url in ("http://intranet.example/hook", "http://127.0.0.1:8000/hook", "http://[::1]/hook",
                "http://169.254.169.254/latest/meta-data/", "http://100.100.100.200/", "http://0.0.0.0:80/",
                "http://224.0.0.1/", "file:///etc/passwd"):
        with pytest.raises(outbound.OutboundRefused, match="refused"):
            webhooks.register(project, url, ["import.finished"])
    base = "/api/v1/projects/test-project/webhooks/"
    answer = api(manager).post(base, {"url": "http://intranet.example/hook", "events": ["import.finished"]},
                               format="json")
    assert answer.status_code == 400
    assert "http://intranet.example/hook" in answer.json()["url"][0] and "10.0.0.1" in answer.json()["url"][0]
    client.force_login(manager)
    page = client.post(reverse("project-webhooks", args=[project.slug]),
                       {"url": "http://intranet.example/hook", "events": ["training.failed"]})
    assert page.status_code == 200 and "10.0.0.1" in page.content.decode()
    assert not Webhook.objects.exists()
    webhooks.register(project, "http://public.example/hook", ["import.finished"])  # a public host is fine
    assert Webhook.objects.count() == 1


@pytest.mark.django_db
def test_a_delivery_to_a_private_address_is_refused_without_retries(project, receiver, settings, fake_dns):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    # Registered while public; by delivery time the name points inside the network.
    fake_dns({"moved.example": "93.184.215.14"})
    moved = webhooks.register(project, "http://moved.example/hook", ["import.finished"])
    fake_dns({"moved.example": "10.0.0.1"})
    # Stored before the guard existed (or written directly): a hook at the local receiver.
    server = receiver()
    local = Webhook.objects.create(project=project, url=server.url, secret="s", events=["import.finished"])
    ids = webhooks.emit(project, "import.finished", {"import_job": 1})
    for delivery_id in ids:
        assert webhooks.deliver(delivery_id) == "failed"  # no DeliveryFailed: retrying cannot help
    by_hook = {d.webhook_id: d for d in WebhookDelivery.objects.filter(pk__in=ids)}
    assert "10.0.0.1" in by_hook[moved.pk].error and "127.0.0.1" in by_hook[local.pk].error
    assert all(d.attempts == 1 and d.response_status is None for d in by_hook.values())
    assert server.received == []


@pytest.mark.django_db
def test_a_name_rebound_after_the_check_is_caught_at_the_connection(project, receiver, settings, fake_dns):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    server = receiver()
    port = server.server.server_address[1]
    # The check sees a public address, the connection then gets 127.0.0.1 (DNS rebinding).
    fake_dns({"rebind.example": ["93.184.215.14", "127.0.0.1"]})
    hook = Webhook.objects.create(project=project, url=f"http://rebind.example:{port}/hook", secret="s",
                                  events=["import.finished"])
    delivery = WebhookDelivery.objects.create(webhook=hook, event="import.finished", payload={})
    assert webhooks.deliver(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "127.0.0.1" in delivery.error and server.received == []
