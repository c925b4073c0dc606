#!/usr/bin/env bash
# The Compose stack's Elasticsearch users, least privilege for each client.
#
# Run once by the "elasticsearch-setup" service (in the Elasticsearch image,
# which has bash and curl) when Elasticsearch is healthy, before Kibana,
# Logstash and Grafana start:
#
#   kibana_system      Kibana's own connection: gets KIBANA_SYSTEM_PASSWORD
#   minitwit_logstash  Logstash's output: may only write to logs-minitwit-*
#   minitwit_grafana   Grafana's datasource: may only read logs-minitwit-*
#
# The elastic superuser (ELASTIC_PASSWORD) stays for `minitwit logs setup` and
# for people. Every request is a create-or-update: running it again is safe.
# Passwords come from the environment only (compose/.env).
set -euo pipefail

es_url=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
attempts=${ES_SETUP_ATTEMPTS:-30}
pause=${ES_SETUP_RETRY_SECONDS:-2}
index_pattern='logs-minitwit-*'

missing=""
for name in ELASTIC_PASSWORD KIBANA_SYSTEM_PASSWORD LOGSTASH_ELASTIC_PASSWORD GRAFANA_ELASTIC_PASSWORD; do
  [ -n "${!name:-}" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "setup-users.sh: set these environment variables (compose/.env):$missing" >&2
  exit 2
fi

# A JSON string: backslashes and double quotes escaped.
json() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# es METHOD PATH BODY: retried while Elasticsearch is unreachable or answers 5xx
# (its security index may still be starting); any 4xx fails at once.
es() {
  local method=$1 path=$2 body=$3 code attempt out
  out=$(mktemp)
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    code=$(curl --silent --show-error --output "$out" --write-out '%{http_code}' \
      --user "elastic:$ELASTIC_PASSWORD" --request "$method" \
      --header 'Content-Type: application/json' --data-binary @- \
      "$es_url$path" <<<"$body") || code=000
    case $code in
    2??)
      echo "$method $path: $code"
      rm -f "$out"
      return 0
      ;;
    4??)
      echo "$method $path: $code $(head -c 500 "$out")" >&2
      rm -f "$out"
      return 1
      ;;
    esac
    echo "$method $path: ${code/#000/unreachable}, retrying ($attempt/$attempts)" >&2
    sleep "$pause"
  done
  rm -f "$out"
  echo "$method $path: gave up after $attempts attempts" >&2
  return 1
}

es POST /_security/user/kibana_system/_password \
  "{\"password\": $(json "$KIBANA_SYSTEM_PASSWORD")}"

es PUT /_security/role/minitwit_logs_writer \
  "{\"cluster\": [\"monitor\"], \"indices\": [{\"names\": [\"$index_pattern\"], \"privileges\": [\"create_doc\", \"auto_configure\", \"view_index_metadata\"]}]}"
es PUT /_security/user/minitwit_logstash \
  "{\"password\": $(json "$LOGSTASH_ELASTIC_PASSWORD"), \"roles\": [\"minitwit_logs_writer\"], \"full_name\": \"MiniTwit Logstash\"}"

es PUT /_security/role/minitwit_logs_reader \
  "{\"cluster\": [\"monitor\"], \"indices\": [{\"names\": [\"$index_pattern\"], \"privileges\": [\"read\", \"view_index_metadata\"]}]}"
es PUT /_security/user/minitwit_grafana \
  "{\"password\": $(json "$GRAFANA_ELASTIC_PASSWORD"), \"roles\": [\"minitwit_logs_reader\"], \"full_name\": \"MiniTwit Grafana\"}"

echo "Elasticsearch users ready: kibana_system, minitwit_logstash, minitwit_grafana"
