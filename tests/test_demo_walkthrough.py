"""The README's guided tour, run as a user runs it: the demo started the way ``make demo`` starts it (migrate,
collectstatic, seed_demo, then ``platform/run-all.sh``: gunicorn, a worker on both queues and beat, on the
embedded default, SQLite and the filesystem broker) in a temporary TAGRANK_VAR_DIR on a free port; then
``benchmarks/demo_walkthrough.py`` to its end, screenshots included; then schemathesis's conformance checks
against the same live server, signed in as the demo's manager.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SLUG = "demo-photos"
MANAGER = ("manager", "tagrank-manager")
SCREENSHOTS = ("dashboard.png", "analysis-tags.png", "analysis-blur.png", "explanation.png")
# The environment of a fresh shell: none of the test session's database, broker or media settings.
SESSION_ONLY = ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "TAGRANK_BROKER_DIR", "DJANGO_SETTINGS_MODULE",
                "TAGRANK_IMPORT_ARCHIVE_DIR", "TAGRANK_BEAT_HEARTBEAT_FILE", "TAGRANK_FEATURES_DIR")

pytestmark = [pytest.mark.worker, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The running demo: (base url, its TAGRANK_VAR_DIR); stopped with its three processes afterwards."""
    var = tmp_path_factory.mktemp("demo-var")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in SESSION_ONLY}
    env.update(DEBUG="true", TAGRANK_VAR_DIR=str(var), HOST="127.0.0.1", PORT=str(port), PYTHON=sys.executable,
               WEB_WORKERS="2")
    for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"], ["seed_demo"]):
        done = subprocess.run([sys.executable, "manage.py", *step], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"manage.py {' '.join(step)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    log = var / "run-all.log"
    with open(log, "w") as output:
        process = subprocess.Popen(["bash", "platform/run-all.sh"], cwd=REPO_ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process, log, timeout=180)
        yield base, var
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # run-all.sh's trap stops gunicorn, the worker and beat
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_the_walkthrough_runs_to_its_end_and_takes_its_screenshots(demo):
    base, var = demo
    out = var / "walkthrough"
    walk = subprocess.run(
        [sys.executable, "benchmarks/demo_walkthrough.py", "--url", base, "--judgments", "40", "--timeout", "900",
         "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert walk.returncode == 0, walk.stdout[-3000:] + walk.stderr[-3000:]
    assert "stored {'rater': 40, 'rater2': 40} judgments" in walk.stdout
    explained = next(line for line in walk.stdout.splitlines() if line.startswith("explanation of image"))
    assert '"first_request_s"' in explained and '"polls"' in explained  # a 202 is polled, not a failure
    for name in SCREENSHOTS:
        shot = out / name
        assert f"screenshot: {shot}" in walk.stdout
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name  # a real page, not an empty frame


def described(exc: BaseException) -> str:
    """The failure with what it groups (schemathesis and Hypothesis report several failures as one group)."""
    inner = getattr(exc, "exceptions", ())
    return str(exc) + "".join(f"\n  - {described(sub)}" for sub in inner)


def test_the_live_api_conforms_to_its_schema(demo):
    """schemathesis against the live server: no 5xx, every status and content type as the schema says."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    base, _ = demo
    token = requests.post(f"{base}/api/v1/auth/token/", json=dict(zip(("username", "password"), MANAGER)),
                          timeout=30).json()["token"]
    auth = {"Authorization": f"Token {token}"}
    image_id = requests.get(f"{base}/api/v1/projects/{SLUG}/images/?page_size=1", headers=auth,
                            timeout=30).json()["results"][0]["id"]
    schema = schemathesis.openapi.from_url(f"{base}/api/schema/", headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking the token ends the session's access: that operation goes last.
    operations.sort(key=lambda operation: operation.path.endswith("/revoke/"))
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=3, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case):
            parameters = case.path_parameters or {}
            if "slug" in parameters:
                parameters["slug"] = SLUG
            if "image_id" in parameters:
                parameters["image_id"] = image_id
            case.call_and_validate(headers=auth, checks=[not_a_server_error, status_code_conformance,
                                                         content_type_conformance])

        try:
            conforms()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures are collected, then reported
            failures.append(f"{operation.label}: {described(exc)[:3000]}")
    assert len(operations) > 40
    assert failures == [], "\n\n".join(failures)
