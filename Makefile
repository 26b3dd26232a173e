# Tagrank: two commands on a fresh machine with Python 3.11.
#   make demo   run the platform with demo data on the embedded default (SQLite, filesystem broker)
#   make test   run the whole test suite (against DATABASE_URL / CELERY_BROKER_URL when set)

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies on this machine's disk; pip looks there first when the folder exists.
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := $(if $(WHEELS),--find-links $(WHEELS),)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test venv test-prerequisites lock migrate benchmarks clean-demo

$(VENV)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Tagrank needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_FLAGS) -r requirements.lock
	# Test data only: CLIP's BPE vocabulary from open_clip_torch's wheel, without its deps (they would replace torch).
	$(PY) -m pip install --quiet --no-deps open_clip_torch==3.3.0
	touch $@

venv: $(VENV)/.installed

# The demo is the one place with DEBUG on (the image and compose default to off).
demo: export DEBUG = true
demo: venv
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) PYTHON=$(PY) bash platform/run-all.sh

# Chromium for the browser tests and nginx for the production-shape test (apt-get where root).
test-prerequisites: venv
	@bash platform/test-prerequisites.sh $(PY)

test: venv test-prerequisites
	$(PY) -m pytest $(PYTEST_ARGS)

benchmarks: venv
	$(PY) benchmarks/ranker.py
	$(PY) benchmarks/active_learning.py
	$(PY) benchmarks/quality_stats.py

# Re-pin after editing pyproject.toml's dependencies: resolve into a fresh venv, then freeze.
lock:
	rm -rf /tmp/tagrank-lock && $(PYTHON) -m venv /tmp/tagrank-lock
	/tmp/tagrank-lock/bin/pip install --quiet $(PIP_FLAGS) ".[dev]"
	{ head -2 requirements.lock; /tmp/tagrank-lock/bin/pip freeze --exclude tagrank | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean-demo:
	rm -rf var/
