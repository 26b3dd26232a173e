"""The production shape without Docker: Debian's nginx with platform/nginx/tagrank.conf.template (the file
the compose proxy uses) in front of gunicorn (DEBUG off) and the session's Celery worker, on the database
and broker the tests use (PostgreSQL and Redis in CI). Everything over HTTPS with a self-signed certificate
made by the proxy image's own script."""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from labeling.models import Comparison, Image, Membership, Project
from tests.conftest import free_port, make_image_bytes, wait_for_port, worker_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "platform" / "nginx" / "tagrank.conf.template"
MAX_BODY_MB = 5
PASSWORD = "shape-password-1"

pytestmark = [pytest.mark.worker, pytest.mark.production_shape, pytest.mark.django_db(transaction=True)]


def render_template(values: dict[str, str]) -> str:
    """What the nginx image's envsubst does with these variables: ${NAME} replaced, nothing else."""
    text = TEMPLATE.read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used == set(values), f"the template's variables changed: {sorted(used ^ set(values))}"
    for name, value in values.items():
        text = text.replace("${%s}" % name, value)
    return text


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    assert found, "nginx is not installed: `make test` installs it (platform/test-prerequisites.sh)"
    return found


def mime_types(nginx: str) -> str:
    configure = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    conf_path = re.search(r"--conf-path=(\S+)", configure)
    return str(Path(conf_path.group(1) if conf_path else "/etc/nginx/nginx.conf").parent / "mime.types")


class Shape:
    """gunicorn and nginx processes; their logs stay in ``folder`` for failure messages."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []

    def spawn(self, args: list[str], env: dict, log_name: str) -> tuple[subprocess.Popen, Path]:
        log = self.folder / log_name
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, log

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # quick shutdown for both gunicorn and nginx
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=20)


@pytest.fixture(scope="module")
def shape(celery_worker_process, media_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shape")
    var = folder / "var"
    web_port, https_port, http_port = free_port(), free_port(), free_port()
    env = worker_environment(media_root)
    env.update(
        DEBUG="false", SECRET_KEY="shape-" + "k" * 50, ALLOWED_HOSTS="localhost,127.0.0.1",
        TAGRANK_VAR_DIR=str(var), TAGRANK_MEDIA_ACCEL_REDIRECT="/protected-media/",
        WEB_WORKERS="2", WEB_THREADS="2", WEB_ACCESS_LOG=str(folder / "gunicorn-access.log"),
        FORWARDED_ALLOW_IPS="127.0.0.1",  # nginx connects from here; nothing else is believed
    )
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO_ROOT, env=env,
                   check=True, capture_output=True)
    # The proxy image's own script makes the self-signed certificate, as on a first start.
    certs = {"NGINX_CERT": str(folder / "certs" / "tls.crt"), "NGINX_CERT_KEY": str(folder / "certs" / "tls.key")}
    made = subprocess.run(["sh", str(REPO_ROOT / "platform" / "nginx" / "self-signed-certificate.sh")],
                          env={**os.environ, **certs, "TLS_HOSTNAME": "localhost"}, capture_output=True, text=True)
    assert made.returncode == 0 and "self-signed" in made.stdout, made.stderr

    shape = Shape(folder)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    web, web_log = shape.spawn([gunicorn, "config.wsgi:application", "--config", "platform/gunicorn.conf.py",
                                "--bind", f"127.0.0.1:{web_port}"], env, "gunicorn.log")
    nginx = nginx_binary()
    prefix = folder / "nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True)
    (prefix / "tagrank.conf").write_text(render_template({
        "TAGRANK_UPSTREAM": f"127.0.0.1:{web_port}",
        "NGINX_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "NGINX_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
        **certs,
        "NGINX_MAX_BODY_SIZE": f"{MAX_BODY_MB}m",
        "STATIC_ROOT": str(var / "static"),
        "MEDIA_ROOT": str(media_root),
    }))
    # Only this wrapper is the test's own: a foreground nginx with its files under a temporary prefix.
    # As root, workers run as root too, to read pytest's private temporary folders.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(f"""
daemon off;
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    include {mime_types(nginx)};
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/tagrank.conf;
}}
""")
    nginx_args = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proxy, proxy_log = shape.spawn(nginx_args, env, "nginx.log")
    try:
        wait_for_port(web_port, web, web_log)
        wait_for_port(https_port, proxy, prefix / "error.log")
        shape.base = f"https://localhost:{https_port}"
        shape.http_port, shape.web_port, shape.cert = http_port, web_port, certs["NGINX_CERT"]
        shape.access_log = folder / "gunicorn-access.log"
        shape.static_root = var / "static"
        yield shape
    finally:
        shape.stop()


@pytest.fixture
def campaign(live_worker, settings):
    """Project A with a rater and a manager and four images; project B with its own rater."""
    users = {name: get_user_model().objects.create_user(name, password=PASSWORD)
             for name in ("shape-rater", "shape-manager", "shape-stranger")}
    a = Project.objects.create(name="Shape A", slug="shape-a", overlap=1)
    b = Project.objects.create(name="Shape B", slug="shape-b", overlap=1)
    Membership.objects.create(project=a, user=users["shape-rater"], role=Membership.Role.RATER)
    Membership.objects.create(project=a, user=users["shape-manager"], role=Membership.Role.MANAGER)
    Membership.objects.create(project=b, user=users["shape-stranger"], role=Membership.Role.RATER)
    from labeling.services.imports import store_image

    images = [store_image(a, f"a{i}.png", make_image_bytes(seed=100 + i), tags=["shape"])[0] for i in range(4)]
    return {"a": a, "b": b, "images": images, **users}


def session_for(shape: Shape) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE or a proxy from the environment would win over these
    session.verify = shape.cert
    return session


def log_in(shape: Shape, username: str) -> requests.Session:
    session = session_for(shape)
    form = session.get(f"{shape.base}/accounts/login/")
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = session.post(f"{shape.base}/accounts/login/", allow_redirects=False,
                          data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
                          headers={"Referer": f"{shape.base}/accounts/login/"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/", answer.text[:500]
    return session


def test_health_hsts_and_https_redirect(shape, live_worker):
    from core.models import Heartbeat
    from worker.health_tasks import beat_tick_task

    answer = session_for(shape).get(f"{shape.base}/healthz/")
    assert answer.status_code == 200, answer.text
    checks = answer.json()["checks"]
    assert checks["database"]["status"] == "ok" and checks["broker"]["status"] == "ok"
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    # Beat's tick, run by the worker behind the proxy, shows up in /healthz/ as fresh.
    beat_tick_task.apply_async()
    deadline = time.monotonic() + 60
    while not Heartbeat.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    beat = session_for(shape).get(f"{shape.base}/healthz/").json()["checks"]["beat"]
    assert beat["status"] == "ok" and beat["age_seconds"] < 60
    plain = session_for(shape).get(f"http://127.0.0.1:{shape.http_port}/projects/?x=1", allow_redirects=False)
    assert plain.status_code == 301 and plain.headers["Location"] == "https://127.0.0.1/projects/?x=1"


def test_login_sets_secure_cookies_and_a_pair_is_rated(shape, campaign):
    session = log_in(shape, "shape-rater")
    cookies = {cookie.name: cookie for cookie in session.cookies}
    assert {"sessionid", "csrftoken"} <= set(cookies)
    assert cookies["sessionid"].secure and cookies["csrftoken"].secure
    assert cookies["sessionid"].has_nonstandard_attr("HttpOnly")

    pair = session.get(f"{shape.base}/api/v1/projects/shape-a/next-pair/")
    assert pair.status_code == 200, pair.text
    pair = pair.json()
    # gunicorn believed nginx's X-Forwarded-Proto: Django builds https links on the proxy's host and port.
    assert pair["a"]["url"].startswith(f"{shape.base}/media/images/")
    rated = session.post(f"{shape.base}/api/v1/projects/shape-a/comparisons/",
                         json={"lease": pair["lease"], "winner": "a", "client_key": "shape-1", "response_ms": 900},
                         headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{shape.base}/"})
    assert rated.status_code == 201, rated.text
    comparison = Comparison.objects.get()
    assert (comparison.rater.username, comparison.outcome, comparison.client_key) == ("shape-rater", "a", "shape-1")
    assert {comparison.image_a_id, comparison.image_b_id} == {pair["a"]["id"], pair["b"]["id"]}


def test_forwarded_proto_is_believed_only_from_the_proxy(shape, campaign):
    token = Token.objects.create(user=campaign["shape-rater"]).key
    # Straight to gunicorn from another loopback address, claiming HTTPS: not believed.
    connection = http.client.HTTPConnection("127.0.0.1", shape.web_port, timeout=30, source_address=("127.0.0.3", 0))
    connection.request("GET", "/api/v1/projects/shape-a/next-pair/",
                       headers={"Authorization": f"Token {token}", "X-Forwarded-Proto": "https", "Host": "localhost"})
    answer = connection.getresponse()
    body = answer.read().decode()
    assert answer.status == 200, body
    assert '"url":"http://localhost/media/images/' in body.replace(" ", "")


def test_static_files_come_from_nginx(shape):
    css = next(shape.static_root.glob("admin/css/base.*.css"))
    answer = session_for(shape).get(f"{shape.base}/static/{css.relative_to(shape.static_root)}")
    assert answer.status_code == 200 and answer.content == css.read_bytes()
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "/static/" not in shape.access_log.read_text()


def test_protected_media_through_the_proxy_for_a_member(shape, campaign):
    thumbnail = campaign["images"][0].thumbnail
    url = f"{shape.base}/media/{thumbnail.name}"
    assert session_for(shape).get(url).status_code == 401  # anonymous: Django says no
    answer = log_in(shape, "shape-rater").get(url)
    assert answer.status_code == 200 and answer.content == Path(thumbnail.path).read_bytes()
    assert answer.headers["Content-Type"] == "image/webp" and "X-Accel-Redirect" not in answer.headers
    # Headers Django set are not carried over by X-Accel-Redirect: nginx's location sets them (issue 26).
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    # Django decided (its access log has the request), nginx sent the bytes (the body Django gave was empty).
    assert f"/media/{thumbnail.name}" in shape.access_log.read_text()
    # The internal location cannot be asked for from outside.
    assert session_for(shape).get(f"{shape.base}/protected-media/{thumbnail.name}").status_code == 404


def test_protected_media_is_404_for_another_projects_user(shape, campaign):
    # Django decides per project (labeling/access.py, the access issue); the proxy only sends what it allows.
    url = f"{shape.base}/media/{campaign['images'][0].thumbnail.name}"
    assert log_in(shape, "shape-stranger").get(url).status_code == 404


def test_uploads_pass_the_proxy_and_oversized_ones_are_413(shape, campaign):
    session = log_in(shape, "shape-manager")
    upload_url = f"{shape.base}/projects/shape-a/upload/"
    form = session.get(upload_url)
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    headers = {"Referer": upload_url}
    small = session.post(upload_url, headers=headers, data={"csrfmiddlewaretoken": token, "tags": "uploaded"},
                         files={"files": ("fresh.png", make_image_bytes(seed=999), "image/png")})
    assert small.status_code == 200, small.text[:500]
    assert Image.objects.filter(project=campaign["a"]).count() == 5
    big = os.urandom((MAX_BODY_MB + 1) * 1024 * 1024)
    too_big = session.post(upload_url, headers=headers, data={"csrfmiddlewaretoken": token},
                           files={"files": ("huge.png", big, "image/png")})
    assert too_big.status_code == 413
    assert Image.objects.filter(project=campaign["a"]).count() == 5
