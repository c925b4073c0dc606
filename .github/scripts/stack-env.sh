#!/usr/bin/env bash
# Prepare compose/ on a CI runner for `docker compose config` and `up`:
#   - compose/.env from compose/.env.example, every secret generated
#     (scripts/compose-env, as a person would do it);
#   - a throwaway self-signed certificate for HAProxy (the production
#     variant's TLS_CERTIFICATE_FILE default), unless one is there already.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/compose-env
cert=compose/haproxy/certs/minitwit.pem
if [ ! -s "$cert" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  cat "$work/cert.pem" "$work/key.pem" >"$cert"
  chmod 644 "$cert" # HAProxy runs as uid 99 in its container
  echo "self-signed certificate: $cert"
fi
