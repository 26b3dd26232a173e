#!/usr/bin/env bash
# One image, several roles: web | worker-gpu | worker | beat | manage <args>.
set -euo pipefail
# Busy-waiting BLAS threads slow the numpy fits of the workers on small machines; one thread each.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
role=${1:-web}
shift || true
case "$role" in
  web)
    python manage.py migrate --noinput
    python manage.py collectstatic --noinput -v0
    exec gunicorn config.wsgi:application --config platform/gunicorn.conf.py --bind "0.0.0.0:${PORT:-8000}" "$@"
    ;;
  worker-gpu)
    exec celery -A worker worker -Q gpu --concurrency "${WORKER_CONCURRENCY:-1}" --loglevel INFO --hostname "gpu@%h" "$@"
    ;;
  worker)
    exec celery -A worker worker -Q default --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel INFO --hostname "default@%h" "$@"
    ;;
  beat)
    exec celery -A worker beat --loglevel INFO --schedule /tmp/celerybeat-schedule "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    echo "unknown role '$role' (web, worker-gpu, worker, beat, manage)" >&2
    exit 2
    ;;
esac
