"""Settings are read from the environment; bad values fail early with a message that says what to do."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_settings(env: dict, tmp_path) -> subprocess.CompletedProcess:
    code = (
        "import json, django; from django.conf import settings; "
        "db = settings.DATABASES['default']; "
        "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), 'host': db.get('HOST'), "
        "'broker': settings.CELERY_BROKER_URL, 'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS, "
        "'media': str(settings.MEDIA_ROOT), 'encoder': settings.TAGRANK_ENCODER, "
        "'options': db.get('OPTIONS', {})}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {
        "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT", "SECRET_KEY", "DEBUG",
        "ALLOWED_HOSTS", "TAGRANK_ENCODER", "TAGRANK_VAR_DIR"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "TAGRANK_VAR_DIR": str(tmp_path / "var")})
    clean.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=clean, capture_output=True, text=True)


def parsed(env, tmp_path) -> dict:
    import json

    result = load_settings(env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_is_sqlite_and_filesystem_broker(tmp_path):
    values = parsed({"DEBUG": "true"}, tmp_path)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "var" / "tagrank.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["media"] == str(tmp_path / "var" / "media")
    assert values["encoder"] == "quality-stats"  # weight-free: works offline
    assert "journal_mode=WAL" in values["options"]["init_command"]
    assert values["options"]["timeout"] > 0


def test_services_from_environment(tmp_path):
    values = parsed(
        {
            "DATABASE_URL": "postgres://tagrank:secret@db.internal:5433/tagrank",
            "CELERY_BROKER_URL": "redis://redis:6379/0",
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "tagrank.example.org, localhost",
            "TAGRANK_ENCODER": "/models/clip-vit-b32",
            "MEDIA_ROOT": str(tmp_path / "media"),
        },
        tmp_path,
    )
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["host"] == "db.internal"
    assert values["broker"] == "redis://redis:6379/0"
    assert values["debug"] is False
    assert values["hosts"] == ["tagrank.example.org", "localhost"]
    assert values["encoder"] == "/models/clip-vit-b32"
    assert values["media"] == str(tmp_path / "media")


def test_secret_key_required_when_debug_off(tmp_path):
    result = load_settings({"DEBUG": "0"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_is_off_unless_set_and_the_development_key_needs_it(tmp_path):
    unset = load_settings({}, tmp_path)  # no DEBUG, no SECRET_KEY: refused, never the development key
    assert unset.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in unset.stderr
    assert parsed({"SECRET_KEY": "k" * 50}, tmp_path)["debug"] is False
    assert parsed({"DEBUG": "true"}, tmp_path)["debug"] is True  # make demo's setting


def test_bad_boolean_is_named(tmp_path):
    result = load_settings({"DEBUG": "maybe"}, tmp_path)
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_training_configuration_is_a_json_object_from_the_environment(tmp_path):
    code = "from django.conf import settings; print(settings.TAGRANK_TRAIN_CONFIG, settings.TAGRANK_SCORING_BATCH_SIZE)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "TAGRANK_VAR_DIR": str(tmp_path / "var"),
           "TAGRANK_TRAIN_CONFIG": '{"epochs": 3}', "TAGRANK_SCORING_BATCH_SIZE": "512"}
    ok = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["{'epochs':", "3}", "512"]
    for bad, message in (("[1, 2]", "must be a JSON object"), ("{epochs: 3}", "is not valid JSON")):
        result = load_settings({"DEBUG": "true", "TAGRANK_TRAIN_CONFIG": bad}, tmp_path)
        assert result.returncode != 0 and "TAGRANK_TRAIN_CONFIG" in result.stderr and message in result.stderr


def test_system_checks_pass_as_make_demo_and_production_run_them(tmp_path):
    """`manage.py migrate` (make demo, the entrypoint) stops on any system-check error, e.g. middleware order."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG"}}
    for env in ({"DEBUG": "true"}, {"DEBUG": "false", "SECRET_KEY": "x" * 60}):
        result = subprocess.run([sys.executable, "manage.py", "check", "--fail-level", "ERROR"], cwd=REPO_ROOT,
                                env={**clean, "TAGRANK_VAR_DIR": str(tmp_path / "var"), **env},
                                capture_output=True, text=True)
        assert result.returncode == 0, (env, result.stdout + result.stderr)
