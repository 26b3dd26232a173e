#!/usr/bin/env bash
# Web + Celery worker (both queues) + beat in one terminal; Ctrl-C stops all three.
# Used by `make demo` on the embedded default; production runs them as separate compose services.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
# The demo runs with DEBUG on (make demo exports it); DEBUG is off unless set (config/settings.py).
export DEBUG=${DEBUG:-true}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BIN=$(dirname "$PYTHON")
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping Tagrank..."
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$BIN/gunicorn" config.wsgi:application --config platform/gunicorn.conf.py --bind "$HOST:$PORT" &
pids+=($!)
OPENBLAS_NUM_THREADS=1 "$PYTHON" -m celery -A worker worker -Q default,gpu --concurrency 1 --loglevel INFO --hostname "demo@%h" &
pids+=($!)
"$PYTHON" -m celery -A worker beat --loglevel INFO &
pids+=($!)

cat <<MSG

  Tagrank is running:  http://$HOST:$PORT/
  Log in as  rater / tagrank-rater     (rates pairs)
         or  manager / tagrank-manager (manages the demo project; the admin is for superusers:
                                        manage.py createsuperuser)
  API docs:  http://$HOST:$PORT/api/schema/swagger/
  Press Ctrl-C to stop the web server, the worker and beat.

MSG
wait -n "${pids[@]}"
