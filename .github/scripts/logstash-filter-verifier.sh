#!/usr/bin/env bash
# Run logstash/tests/ (logstash-filter-verifier test cases) through the real
# pipeline, logstash/pipeline/minitwit.conf, with a real Logstash.
#
# Runs inside the official Logstash image (see the `logstash` job in
# .github/workflows/ci.yml), from the repository root, with
# logstash-filter-verifier on the PATH: the daemon starts Logstash, the client
# sends it the pipeline and the test cases, the daemon stops.
set -euo pipefail
socket=$(mktemp -u /tmp/lfv-XXXXXX.sock)
logstash-filter-verifier --version
logstash-filter-verifier daemon start --socket "$socket" \
  --logstash-path /usr/share/logstash/bin/logstash &
daemon=$!
trap 'logstash-filter-verifier daemon shutdown --socket "$socket" || kill "$daemon"; wait "$daemon" || true' EXIT
for _ in $(seq 120); do
  [ -S "$socket" ] && break
  kill -0 "$daemon" || { echo "the daemon exited before listening" >&2; exit 1; }
  sleep 1
done
[ -S "$socket" ] || { echo "the daemon is not listening on $socket after 120 s" >&2; exit 1; }
logstash-filter-verifier daemon run --socket "$socket" \
  --pipeline logstash/config/pipelines.yml --pipeline-base logstash \
  --testcase-dir logstash/tests
