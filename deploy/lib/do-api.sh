# shellcheck shell=bash
# The few DigitalOcean API calls the failover and blue-green scripts make, over
# curl + jq. Sourced, not run.
#
#   DO_API_URL          API base (default https://api.digitalocean.com); the tests point it at a stub
#   DIGITALOCEAN_TOKEN  the API token, or
#   DO_TOKEN_FILE       a file holding it (the droplets: /etc/minitwit/do-token, root only)
#   DRY_RUN=1           print every call that would change something instead of making it
#                       ("DRY-RUN POST /v2/... {json}" on stdout); reads still go to the API
#
# The token never appears on a command line (where ps would show it): curl
# reads its header from stdin.

DO_API_URL="${DO_API_URL:-https://api.digitalocean.com}"
# The dry-run plan goes to the script's stdout even from inside $(...).
exec {DO_PLAN_FD}>&1
DO_ACTION_TIMEOUT="${DO_ACTION_TIMEOUT:-120}"

do_log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ${DO_LOG_TAG:-minitwit}: $*" >&2; }
do_die() { do_log "error: $*"; exit 1; }

do_token() {
  if [ -n "${DIGITALOCEAN_TOKEN:-}" ]; then
    printf '%s' "$DIGITALOCEAN_TOKEN"
  elif [ -n "${DO_TOKEN_FILE:-}" ] && [ -r "$DO_TOKEN_FILE" ]; then
    tr -d '[:space:]' <"$DO_TOKEN_FILE"
  else
    do_die "no API token: set DIGITALOCEAN_TOKEN or DO_TOKEN_FILE"
  fi
}

# do_api METHOD PATH [JSON_BODY]: prints the response body; fails on HTTP errors.
do_api() {
  local method="$1" path="$2" body="${3:-}" out status
  if [ "${DRY_RUN:-0}" = 1 ] && [ "$method" != GET ]; then
    echo "DRY-RUN $method $path${body:+ $body}" >&"$DO_PLAN_FD"
    echo '{"action": {"id": 0, "status": "completed"}}'
    return 0
  fi
  out="$(mktemp)"
  status="$(
    printf 'header = "Authorization: Bearer %s"\n' "$(do_token)" |
      curl --silent --show-error --config - --max-time 30 --retry 3 --retry-connrefused \
        --request "$method" --header "Content-Type: application/json" \
        ${body:+--data "$body"} --output "$out" --write-out '%{http_code}' \
        "$DO_API_URL$path"
  )" || { rm -f "$out"; do_die "$method $path: no answer from $DO_API_URL"; }
  if [ "${status:-0}" -ge 400 ]; then
    do_log "$method $path: HTTP $status: $(jq -r '.message // empty' "$out" 2>/dev/null || true)"
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

# The id of the droplet a reserved IP is assigned to, or nothing when it is unassigned.
do_reserved_ip_holder() {
  do_api GET "/v2/reserved_ips/$1" | jq -r '.reserved_ip.droplet.id // empty'
}

do_droplet_name() {
  do_api GET "/v2/droplets/$1" | jq -r '.droplet.name'
}

# Run a reserved IP action and wait until DigitalOcean reports it completed.
do_reserved_ip_action() {  # IP JSON
  local ip="$1" body="$2" response id status deadline
  response="$(do_api POST "/v2/reserved_ips/$ip/actions" "$body")" || return 1
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  id="$(jq -r '.action.id' <<<"$response")"
  deadline=$((SECONDS + DO_ACTION_TIMEOUT))
  while :; do
    status="$(do_api GET "/v2/reserved_ips/$ip/actions/$id" | jq -r '.action.status')" || return 1
    case "$status" in
      completed) return 0 ;;
      errored) do_log "action $id on $ip errored"; return 1 ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || { do_log "action $id on $ip still $status after ${DO_ACTION_TIMEOUT}s"; return 1; }
    sleep "${DO_POLL_INTERVAL:-2}"
  done
}

do_assign() { do_reserved_ip_action "$1" "{\"type\": \"assign\", \"droplet_id\": $2}"; }
do_unassign() { do_reserved_ip_action "$1" '{"type": "unassign"}'; }

# do_swap PUBLIC_IP STANDBY_IP TARGET [OTHER]: leave TARGET holding PUBLIC_IP and
# OTHER (when given) holding STANDBY_IP. A droplet holds one reserved IPv4 at a
# time, so the standby IP leaves TARGET before the public IP arrives, and goes
# to OTHER only after the public IP has left it. Idempotent: what is already in
# place is not touched.
do_swap() {
  local public="$1" standby="$2" target="$3" other="${4:-}" public_holder standby_holder
  public_holder="$(do_reserved_ip_holder "$public")"
  standby_holder="$(do_reserved_ip_holder "$standby")"
  if [ "$public_holder" != "$target" ]; then
    if [ "$standby_holder" = "$target" ]; then
      do_log "unassign $standby from droplet $target"
      do_unassign "$standby" || return 1
      standby_holder=""
    fi
    do_log "assign $public to droplet $target"
    do_assign "$public" "$target" || return 1
  fi
  if [ -n "$other" ] && [ "$standby_holder" != "$other" ]; then
    do_log "assign $standby to droplet $other"
    do_assign "$standby" "$other" || return 1
  fi
}

# healthy URL: the app's /health answered 200 with status ok within 3 seconds.
healthy() {
  curl --silent --fail --max-time "${HEALTH_TIMEOUT:-3}" "$1" 2>/dev/null | jq -e '.status == "ok"' >/dev/null 2>&1
}
