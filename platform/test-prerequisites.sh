#!/usr/bin/env bash
# What `make test` needs besides the venv: a headless Chromium (Playwright browser tests) and nginx
# (tests/test_production_shape.py). Order: already there; Debian packages where root and apt-get exist
# (they bring the shared libraries Chromium needs); Playwright's own installer; else one line saying what
# to install. Usage: platform/test-prerequisites.sh PYTHON
set -uo pipefail
PY=${1:-.venv/bin/python}

have_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
    || "$PY" -c 'import os, sys; from playwright.sync_api import sync_playwright
with sync_playwright() as p: sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)' 2>/dev/null
}
have_nginx() { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

missing=()
have_chromium || missing+=(chromium)
have_nginx || missing+=(nginx)
[ ${#missing[@]} = 0 ] && exit 0

if can_apt; then
  echo "make test: installing ${missing[*]} with apt-get"
  started=$(date +%s)
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  echo "make test: apt-get install ${missing[*]} took $(( $(date +%s) - started )) s"
elif [[ " ${missing[*]} " == *" chromium "* ]]; then
  echo "make test: no root/apt-get; trying Playwright's installer for Chromium"
  timeout 300 "$PY" -m playwright install chromium || true
fi

need=""
have_chromium || need="Chromium (Debian: apt-get install chromium; elsewhere: $PY -m playwright install chromium)"
have_nginx || need="${need:+$need and }nginx (Debian: apt-get install nginx; macOS: brew install nginx)"
if [ -n "$need" ]; then
  echo "make test needs $need; install as root, or run make test as root on Debian." >&2
  exit 1
fi
