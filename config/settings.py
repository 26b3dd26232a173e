"""Tagrank settings, read from the environment.

With no environment set, Tagrank runs on the embedded default: SQLite under ``var/``
and Celery's filesystem broker under ``var/broker/``, so nothing needs to be running.
Production (docker-compose.yml) sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and DEBUG=false.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_json_object(name: str) -> dict:
    raw = os.environ.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, not {type(value).__name__}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Everything the embedded default writes (database, broker, media) lives under one folder.
VAR_DIR = Path(os.environ.get("TAGRANK_VAR_DIR") or BASE_DIR / "var").resolve()

# Off unless the environment turns it on: `make demo` and the tests (pyproject.toml) do, nothing else.
DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (for a local trial: DEBUG=true, as `make demo` sets): "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
        )
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "config.site_admin.SiteAdminConfig",  # django.contrib.admin, for superusers only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from static files, not a CDN
    "axes",
    "csp",
    "core",  # shared plumbing: the worker-job base and the heartbeat, no app data
    "labeling",
    "modeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.request_limits.RequestUriLimitMiddleware",
    "config.content_policy.SitePolicyMiddleware",  # django-csp: CONTENT_SECURITY_POLICY below, on every response
    "config.outage.OutageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.api_not_found.ApiNotFoundMiddleware",  # before CommonMiddleware: its slash redirects stay
    "django.middleware.common.CommonMiddleware",
    # Authentication reads only the session, never the body; LoginRequiredMiddleware's subclass below needs it first.
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before CSRF's check: an anonymous write to a page that needs sign-in is redirected before its body is read.
    "config.request_limits.SignInBeforeBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # After authentication: only a project's managers may send large bodies, to its upload routes; before
    # any view, so CSRF's check (a view hook) never reads a body over the caps.
    "config.request_limits.RequestSizeLimitMiddleware",
    "labeling.crowd_confinement.CrowdConfinementMiddleware",  # a campaign link's session: rating only
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "modeling.context_processors.tagrank",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -----------------------------------------------------------------------------
DEFAULT_SQLITE = VAR_DIR / "tagrank.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web process read while a worker writes; IMMEDIATE transactions take the
    # write lock up front so concurrent writers wait (busy timeout) instead of failing mid-way.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a worker process in the tests can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-tagrank-{os.getpid()}.sqlite3")}
else:
    # One test database per test run, so that concurrent runs on one server don't collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or VAR_DIR / "media").resolve()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploads of many photos at once: keep them on disk, not in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("TAGRANK_MAX_UPLOAD_FILES", 100)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
# A request whose Content-Length is larger is refused with 413 before its body is read
# (config/request_limits.py); uploads to a project by its managers have the larger cap (the upload page
# sends many photos in one request).
TAGRANK_MAX_REQUEST_BYTES = env_int("TAGRANK_MAX_REQUEST_BYTES", 1024 * 1024)
TAGRANK_MAX_UPLOAD_BYTES = env_int("TAGRANK_MAX_UPLOAD_BYTES", 256 * 1024 * 1024)
# A longer URI (path and query string) is answered 414; gunicorn's request-line limit is set above it.
TAGRANK_MAX_URI_BYTES = env_int("TAGRANK_MAX_URI_BYTES", 4094)

# Every response carries a Content-Security-Policy (django-csp): scripts only from this site's own files, never
# inline, so markup that slipped into a page or a file cannot run. Styles may be inline (style attributes in
# templates, the charts' SVG, Redoc); images may be data: URIs (Swagger UI's icons); Redoc's search runs
# in a blob: worker. Media files get a stricter policy of their own (config/media.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LOGIN_URL = "login"
# --- Accounts: login limits, tokens -----------------------------------------------------------
# Proxies in front of Tagrank that append to X-Forwarded-For; 0 means the header is ignored.
TAGRANK_PROXY_COUNT = env_int("TAGRANK_PROXY_COUNT", 0)
# One cache for all processes: throttle counts and login failures must not be per process.
TAGRANK_CACHE_URL = os.environ.get("TAGRANK_CACHE_URL", "")
if TAGRANK_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TAGRANK_CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# django-axes: failed logins are counted in the shared cache when there is one, else in the database.
AXES_HANDLER = (
    "labeling.login_limits.CacheLoginLimits" if TAGRANK_CACHE_URL else "labeling.login_limits.DatabaseLoginLimits"
)
AXES_FAILURE_LIMIT = env_int("TAGRANK_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TAGRANK_LOGIN_COOLOFF_MINUTES", 15))
# Per user name and address (AXES_FAILURE_LIMIT: one guesser cannot lock a user out from everywhere), and per
# address across user names (password spraying); labeling/login_limits.py reads them in this order.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT", 20)
AXES_CLIENT_IP_CALLABLE = "labeling.login_limits.client_ip"
AXES_LOCKOUT_CALLABLE = "labeling.login_limits.lockout_response"
AXES_RESET_ON_SUCCESS = True
# API tokens: older ones stop working (a new one is issued at the token endpoint).
TAGRANK_TOKEN_TTL_HOURS = env_int("TAGRANK_TOKEN_TTL_HOURS", 24 * 30)
# The rating page holds two (on screen, prefetched) plus one whose judgment is on its way.
TAGRANK_MAX_LIVE_LEASES = env_int("TAGRANK_MAX_LIVE_LEASES", 3)
TAGRANK_RETRY_AFTER_SECONDS = env_int("TAGRANK_RETRY_AFTER_SECONDS", 5)
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

# --- Tagrank --------------------------------------------------------------------------------
# "quality-stats" (technical-quality statistics, no weights), a CLIP hub id (e.g.
# openai/clip-vit-base-patch32), a local folder, or "tiny" (a random-weight CLIP built in code, for tests).
TAGRANK_ENCODER = os.environ.get("TAGRANK_ENCODER", "quality-stats")
# TAGRANK_DEVICE (auto | cpu | cuda) is read from the environment by modeling.ml.device, Django-free.
TAGRANK_FEATURES_DIR = Path(os.environ.get("TAGRANK_FEATURES_DIR") or MEDIA_ROOT / "features").resolve()
TAGRANK_IMPORT = {
    "allowed_formats": ("JPEG", "PNG", "WEBP"),
    "max_file_bytes": env_int("TAGRANK_MAX_IMAGE_BYTES", 50 * 1024 * 1024),
    "max_pixels": env_int("TAGRANK_MAX_IMAGE_PIXELS", 64_000_000),
    "thumbnail_size": 384,
}
# Bulk import jobs: server-side folders must lie under TAGRANK_IMPORT_ROOT (unset: no folder imports);
# uploaded archives wait in TAGRANK_IMPORT_ARCHIVE_DIR; s3:// manifests use this endpoint (empty: AWS).
TAGRANK_IMPORT_ROOT = os.environ.get("TAGRANK_IMPORT_ROOT") or None
TAGRANK_IMPORT_ARCHIVE_DIR = Path(
    os.environ.get("TAGRANK_IMPORT_ARCHIVE_DIR") or VAR_DIR / "import-archives"
).resolve()
TAGRANK_S3_ENDPOINT_URL = os.environ.get("TAGRANK_S3_ENDPOINT_URL") or None
# Webhook and manifest URLs may reach loopback/private addresses only when this is true (a closed network).
TAGRANK_OUTBOUND_ALLOW_PRIVATE = env_bool("TAGRANK_OUTBOUND_ALLOW_PRIVATE", False)
TAGRANK_LEASE_SECONDS = env_int("TAGRANK_LEASE_SECONDS", 300)
TAGRANK_UNDO_SECONDS = env_int("TAGRANK_UNDO_SECONDS", 60)
# The model loop (see docs/architecture.md): batch sizes, and when a silent run or rescore counts as lost.
TAGRANK_FEATURE_BATCH_SIZE = env_int("TAGRANK_FEATURE_BATCH_SIZE", 64)
TAGRANK_SCORING_BATCH_SIZE = env_int("TAGRANK_SCORING_BATCH_SIZE", 2048)
TAGRANK_SCORING_STALE_SECONDS = env_int("TAGRANK_SCORING_STALE_SECONDS", 600)
TAGRANK_TRAINING_HEARTBEAT_SECONDS = env_int("TAGRANK_TRAINING_HEARTBEAT_SECONDS", 10)
TAGRANK_TRAINING_STALE_SECONDS = env_int("TAGRANK_TRAINING_STALE_SECONDS", 300)
TAGRANK_TRAINING_REDISPATCH_SECONDS = env_int("TAGRANK_TRAINING_REDISPATCH_SECONDS", 900)
TAGRANK_TRAINING_FAILURE_COOLDOWN_SECONDS = env_int("TAGRANK_TRAINING_FAILURE_COOLDOWN_SECONDS", 600)
# Overrides of modeling.ml.training.TrainConfig's fields, as a JSON object, e.g. {"epochs": 20}.
TAGRANK_TRAIN_CONFIG = env_json_object("TAGRANK_TRAIN_CONFIG")
TAGRANK_PAIR_QUEUE = env_json_object("TAGRANK_PAIR_QUEUE")  # RefillPolicy fields (modeling.services.pair_selection)
# The incremental model loop (modeling/services/comparison_cache.py, human_score_writes.py): each worker process
# keeps a project's comparisons and a copy of its stored scores between refits. Off: every fit rereads all.
TAGRANK_INCREMENTAL_FIT = env_bool("TAGRANK_INCREMENTAL_FIT", True)
# Celery workers lower their CPU priority by this much (os.nice) at start: a refit or a training run then
# never delays the web's requests on a shared host (docker-compose.yml also gives them fewer cpu_shares).
TAGRANK_WORKER_NICE = env_int("TAGRANK_WORKER_NICE", 10)

# --- Celery -------------------------------------------------------------------------------
BROKER_DIR = Path(os.environ.get("TAGRANK_BROKER_DIR") or VAR_DIR / "broker").resolve()
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "worker.broker_files:Transport"  # kombu's, with atomic message writes
    # One folder for in and out: every process on this machine both sends and receives.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or f"file://{BROKER_DIR / 'results'}"
    for folder in ("queue", "processed", "control", "results"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.api.token_auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's three, with JSON's nesting bounded (a 400, not a RecursionError's 500).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Refusals from the services answer with their status (core/api_errors.py); everything else as DRF does.
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    # No OPTIONS introspection (405): the schema, for signed-in callers, describes every endpoint.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {
        "auth": os.environ.get("TAGRANK_THROTTLE_AUTH", "20/min"),
        "submit": os.environ.get("TAGRANK_THROTTLE_SUBMIT", "600/min"),
        "next_pair": os.environ.get("TAGRANK_THROTTLE_NEXT_PAIR", "300/min"),
    },
    # Client IPs for throttles: X-Forwarded-For counts only behind that many proxies.
    "NUM_PROXIES": TAGRANK_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tagrank API",
    "DESCRIPTION": "Pairwise image-quality ratings, tags, model scores and exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and its viewers are for signed-in users and tokens, like the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "labeling.api.token_auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # <id:…> (labeling/url_ids.py) is an integer.
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    # Several models have a "status": name the manager tools' enums rather than letting them collide.
    # Every status an operation can give, those of the layers in front of the views too (core/api_schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api_schema.complete_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ImportJobStatusEnum": "labeling.models.ImportJob.Status",
        "WebhookDeliveryStatusEnum": "labeling.models.WebhookDelivery.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

# --- Production behind the proxy (platform/nginx/tagrank.conf.template, docs/operations.md) ----
# No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from anyone. gunicorn sets the
# request's scheme from it only for FORWARDED_ALLOW_IPS (the proxy), and Django reads that scheme.
# Non-empty (e.g. /protected-media/): an allowed media request is answered with an empty body and
# X-Accel-Redirect: <prefix><path>, and the proxy sends the file from its internal location.
TAGRANK_MEDIA_ACCEL_REDIRECT = os.environ.get("TAGRANK_MEDIA_ACCEL_REDIRECT", "")
# /healthz/ calls beat's tick (worker/health_tasks.py, every 30 s) stale after this many seconds.
TAGRANK_BEAT_STALE_SECONDS = env_int("TAGRANK_BEAT_STALE_SECONDS", 180)
# Touched by beat on every loop (worker/beat.py): the beat container's own health check reads its age.
TAGRANK_BEAT_HEARTBEAT_FILE = Path(os.environ.get("TAGRANK_BEAT_HEARTBEAT_FILE") or VAR_DIR / "beat-heartbeat")

