"""Shared fixtures: users and projects, an isolated media folder, and a real Celery worker process."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from PIL import Image as PILImage

from worker import app as celery_app

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def empty_comparison_cache():
    """Each test starts with this process's comparison cache (and copy of the stored scores, and the agreement report's
    kept fit) empty: a test database rolled back reuses ids, which a real database never does
    (``modeling/services/comparison_cache.py``)."""
    from modeling.services import comparison_cache, human_score_writes, report_fit_start

    for forget in (comparison_cache.forget, human_score_writes.forget, report_fit_start.forget):
        forget()
    yield
    for forget in (comparison_cache.forget, human_score_writes.forget, report_fit_start.forget):
        forget()


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path_factory):
    """Every test writes images and features to a folder of its own, never to var/media."""
    folder = tmp_path_factory.mktemp("test-media")
    settings.MEDIA_ROOT = folder
    settings.TAGRANK_FEATURES_DIR = folder / "features"
    return folder


def make_image_bytes(color=(200, 30, 30), size=(64, 48), fmt="PNG", seed: int | None = None) -> bytes:
    """A small valid image; ``seed`` draws random pixels so that every image has its own sha256."""
    if seed is not None:
        import numpy as np

        pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = PILImage.fromarray(pixels, mode="RGB")
    else:
        image = PILImage.new("RGB", size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def image_bytes():
    return make_image_bytes


@pytest.fixture
def api():
    """``api(user)``: a DRF client authenticated with the user's token; ``api()`` is anonymous."""
    from tests.clients import token_client

    return token_client


@pytest.fixture
def make_user(db):
    def factory(username: str, password: str = "pw-for-tests-1", **extra):
        return get_user_model().objects.create_user(username=username, password=password, **extra)

    return factory


@pytest.fixture
def make_member(make_user):
    """``make_member(project, username, role)``: a new user holding ``role`` (a Membership.Role) in the project."""

    def factory(project, username: str, role: str):
        from labeling.models import Membership

        user = make_user(username)
        Membership.objects.create(project=project, user=user, role=role)
        return user

    return factory


@pytest.fixture
def project(db):
    from labeling.models import Project

    return Project.objects.create(name="Test project", slug="test-project", overlap=1)


@pytest.fixture
def manager(make_member, project):
    return make_member(project, "manager1", "manager")


@pytest.fixture
def rater(make_member, project):
    return make_member(project, "rater1", "rater")


@pytest.fixture
def images(project, image_bytes):
    """Eight stored images with distinct content and a tag each."""
    from labeling.services.imports import store_image

    stored = []
    for index in range(8):
        image, _ = store_image(
            project, f"img_{index}.png", image_bytes(seed=index), tags=["even" if index % 2 == 0 else "odd"]
        )
        stored.append(image)
    return stored


# --- A real Celery worker ------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def isolated_filesystem_broker(tmp_path_factory):
    """On the filesystem broker, each test run gets broker folders of its own, so that two runs on one
    machine never consume each other's messages. (Redis runs are kept apart by their db number.)"""
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        yield None
        return
    folder = tmp_path_factory.mktemp("broker")
    for name in ("queue", "processed", "control", "results"):
        (folder / name).mkdir()
    celery_app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    celery_app.conf.result_backend = f"file://{folder / 'results'}"
    previous = os.environ.get("TAGRANK_BROKER_DIR")
    os.environ["TAGRANK_BROKER_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("TAGRANK_BROKER_DIR", None)
    else:
        os.environ["TAGRANK_BROKER_DIR"] = previous


def database_url_for_subprocess() -> str:
    """The URL of the database the tests are using right now (the test database, once set up)."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def worker_environment(media: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        MEDIA_ROOT=str(media),
        TAGRANK_FEATURES_DIR=str(media / "features"),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_RESULT_BACKEND=celery_app.conf.result_backend,
        TAGRANK_VAR_DIR=str(settings.VAR_DIR),
        TAGRANK_BROKER_DIR=os.environ.get("TAGRANK_BROKER_DIR", str(settings.BROKER_DIR)),
        DJANGO_SETTINGS_MODULE="config.settings",
        TAGRANK_OUTBOUND_ALLOW_PRIVATE="true",  # worker tests deliver to local servers on 127.0.0.1
    )
    return env


class WorkerProcess:
    """``celery -A worker worker`` in a subprocess, serving both queues, with its log kept for failures."""

    def __init__(self, media: Path, log_path: Path, queues: str = "default,gpu"):
        self.media, self.log_path, self.queues = media, log_path, queues
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "WorkerProcess":
        from worker.tasks import ping

        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", self.queues,
             "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO_ROOT, env=worker_environment(self.media), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited early; log:\n{self.log()}")
            try:
                ping.apply_async(args=["ready"]).get(timeout=5)
                return self
            except Exception:  # not consuming yet
                continue
        raise RuntimeError(f"the Celery worker did not answer in {timeout}s; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def purge_broker():
    from worker import app

    def purge():
        try:
            app.control.purge()
        except Exception:  # an empty or missing filesystem queue is fine
            pass

    return purge


@pytest.fixture(autouse=True)
def no_stray_follow_up_tasks(request, monkeypatch):
    """Without ``live_worker``, follow-up messages (metrics, pair-queue refills after an activation or an
    exclusion) are dropped: otherwise the session's worker, once started, would run them whenever they
    arrive, against whatever a later test has in the database. Tests that check the calls patch these
    again; tests with a worker send them for real."""
    if "live_worker" in request.fixturenames:
        return
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", lambda project_id: None)
    monkeypatch.setattr("worker.dispatch.send_claimed_pair_refill", lambda project_id: None)
    monkeypatch.setattr("worker.dispatch.send_pair_refill", lambda project_id: None)


@pytest.fixture
def live_worker(celery_worker_process, settings, media_root, purge_broker):
    """The session's worker, with this test's media settings pointed at the folder the worker uses.

    Afterwards it waits until the worker is idle: follow-up tasks that the test's tasks sent (metrics
    and a pair-queue refill after an activation) must not still run while the test database is emptied.
    """
    settings.MEDIA_ROOT = media_root
    settings.TAGRANK_FEATURES_DIR = media_root / "features"
    yield celery_worker_process
    from worker.tasks import ping

    # The solo worker runs messages in order: a ping answered means everything it held before is done.
    # Twice, because a task running during the first purge may send one more (a chain's next link).
    for _ in range(2):
        purge_broker()
        if celery_worker_process.process and celery_worker_process.process.poll() is None:
            ping.apply_async(args=["idle"]).get(timeout=180)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, media_root, tmp_path_factory, purge_broker,
                          isolated_filesystem_broker):
    """A real worker on the configured broker, sharing the test database. Use it through ``live_worker``;
    tests that use it must be ``transactional_db`` so that what they write is visible to the worker."""
    purge_broker()
    worker = WorkerProcess(media_root, tmp_path_factory.mktemp("worker") / "worker.log")
    with django_db_blocker.unblock():
        worker.start()
    yield worker
    worker.stop()


# --- Servers started by a test (the production shape, the demo) ---------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")
