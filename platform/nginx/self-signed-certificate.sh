#!/bin/sh
# Without a certificate at $NGINX_CERT / $NGINX_CERT_KEY, make a self-signed one for $TLS_HOSTNAME, so
# that HTTPS works on a first try (browsers warn). Bring a real one: docs/operations.md, "TLS".
# Runs at container start (/docker-entrypoint.d/); tests/test_production_shape.py runs it too.
set -eu
host=${TLS_HOSTNAME:-localhost}
if [ ! -s "$NGINX_CERT" ] || [ ! -s "$NGINX_CERT_KEY" ]; then
  mkdir -p "$(dirname "$NGINX_CERT")" "$(dirname "$NGINX_CERT_KEY")"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" -keyout "$NGINX_CERT_KEY" -out "$NGINX_CERT" 2>/dev/null
  chmod 600 "$NGINX_CERT_KEY"
  echo "$0: no certificate at $NGINX_CERT; made a self-signed one for $host"
fi
