#!/usr/bin/env bash
# What keepalived runs when a health check changes state, plus two helpers.
# The DigitalOcean API is the arbiter: whoever holds the public reserved IP
# serves. Rules: never move the public IP to an unhealthy droplet, never take it
# from a healthy one, and keep the standby IP on the other droplet (blue-green
# deploys use it to reach the passive side).
#
#   failover.sh local-ok      this droplet became healthy: claim the public IP if
#                             nobody healthy holds it, else take the standby IP
#   failover.sh local-fault   this droplet became unhealthy (or drained): hand the
#                             public IP to the peer if the peer is healthy
#   failover.sh peer-fault    the peer stopped answering over the VPC: take the public
#                             IP if the peer held it and the public IP no longer serves
#   failover.sh is-active     exit 0 when this droplet holds the public IP (the backup
#                             timer runs only there), 1 when not, 255 when the API
#                             cannot say
#   failover.sh status        who holds which IP, and who is healthy
#
# Concurrent calls are serialised with a lock. DRY_RUN=1 prints the API calls
# that would change something instead of making them.
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
[ $# -gt 0 ] || usage  # before anything the environment must provide
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/keepalived/common.sh
. "$here/common.sh"
DO_LOG_TAG="minitwit-failover[${SIDE:-?}]"
CLAIM_DELAY="${CLAIM_DELAY:-10}"

: "${PUBLIC_IP:?PUBLIC_IP is not set (see $FAILOVER_ENV)}"
: "${STANDBY_IP:?STANDBY_IP is not set (see $FAILOVER_ENV)}"
if [ -z "${SELF_ID:-}" ]; then
  SELF_ID="$(curl -fsS --max-time 3 "$METADATA_URL/id")" || do_die "cannot read this droplet's id from $METADATA_URL"
fi
PEER_ID="${PEER_ID:-}"

peer_healthy() { [ -n "$PEER_HEALTH_URL" ] && healthy "$PEER_HEALTH_URL"; }
public_serves() { [ -n "$PUBLIC_HEALTH_URL" ] && healthy "$PUBLIC_HEALTH_URL"; }
self_healthy() { [ ! -e "$DRAIN_FILE" ] && healthy "$SELF_HEALTH_URL"; }

take_public() {
  do_log "taking the public IP $PUBLIC_IP (peer: ${PEER_ID:-none})"
  do_swap "$PUBLIC_IP" "$STANDBY_IP" "$SELF_ID" "$PEER_ID"
}

local_ok() {
  local holder
  holder="$(do_reserved_ip_holder "$PUBLIC_IP")"
  if [ "$holder" = "$SELF_ID" ]; then
    do_log "healthy and already active"
    [ -z "$PEER_ID" ] || do_swap "$PUBLIC_IP" "$STANDBY_IP" "$SELF_ID" "$PEER_ID"
    return
  fi
  if [ -n "$holder" ] && { [ "$holder" != "$PEER_ID" ] || peer_healthy || public_serves; }; then
    do_log "healthy; the public IP is served by droplet $holder: standing by"
    [ "$(do_reserved_ip_holder "$STANDBY_IP")" = "$SELF_ID" ] || do_swap "$PUBLIC_IP" "$STANDBY_IP" "$holder" "$SELF_ID"
    return
  fi
  if [ "${PREFERRED:-0}" != 1 ] && [ "$CLAIM_DELAY" -gt 0 ]; then
    # On a fresh start both sides come up together: let the preferred one win.
    sleep "$CLAIM_DELAY"
    holder="$(do_reserved_ip_holder "$PUBLIC_IP")"
    if [ -n "$holder" ] && [ "$holder" != "$SELF_ID" ] && { peer_healthy || public_serves; }; then
      do_log "the peer claimed the public IP first: standing by"
      do_swap "$PUBLIC_IP" "$STANDBY_IP" "$holder" "$SELF_ID"
      return
    fi
  fi
  take_public
}

local_fault() {
  if [ "$(do_reserved_ip_holder "$PUBLIC_IP")" != "$SELF_ID" ]; then
    do_log "unhealthy while passive: nothing to move"
    return
  fi
  if [ -z "$PEER_ID" ] || ! peer_healthy; then
    do_log "unhealthy, but the peer is not healthy either: keeping the public IP"
    return
  fi
  do_log "unhealthy: handing the public IP to droplet $PEER_ID"
  do_swap "$PUBLIC_IP" "$STANDBY_IP" "$PEER_ID" "$SELF_ID"
}

peer_fault() {
  local holder
  holder="$(do_reserved_ip_holder "$PUBLIC_IP")"
  if [ -n "$holder" ] && [ "$holder" != "$PEER_ID" ]; then
    do_log "peer unhealthy while passive: nothing to do"
    return
  fi
  if ! self_healthy; then
    do_log "peer unhealthy, but so is this droplet: nothing to do"
    return
  fi
  # Only the VPC path may be broken: if the public IP still serves, leave it.
  if [ -n "$holder" ] && public_serves; then
    do_log "peer unreachable over the VPC, but $PUBLIC_IP still serves: leaving it"
    return
  fi
  take_public
}

status() {
  local public_holder standby_holder
  public_holder="$(do_reserved_ip_holder "$PUBLIC_IP")"
  standby_holder="$(do_reserved_ip_holder "$STANDBY_IP")"
  echo "side=${SIDE:-?} self=$SELF_ID peer=${PEER_ID:-none}"
  echo "public $PUBLIC_IP -> ${public_holder:-unassigned}"
  echo "standby $STANDBY_IP -> ${standby_holder:-unassigned}"
  if self_healthy; then echo "self healthy"; else echo "self unhealthy"; fi
  if peer_healthy; then echo "peer healthy"; else echo "peer unhealthy"; fi
}

command="${1:-}"
case "$command" in
  is-active)
    # 255, not 1, when the API cannot say: systemd's ExecCondition skips the
    # backup quietly on 1 to 254, and fails the unit (so it is seen) on 255.
    holder="$(do_reserved_ip_holder "$PUBLIC_IP")" || { do_log "cannot ask the API who holds $PUBLIC_IP"; exit 255; }
    [ "$holder" = "$SELF_ID" ]; exit ;;
  status) status; exit ;;
  local-ok | local-fault | peer-fault) ;;
  *) usage ;;
esac

exec 9>"${FAILOVER_LOCK:-/run/lock/minitwit-failover.lock}"
flock 9
case "$command" in
  local-ok) local_ok ;;
  local-fault) local_fault ;;
  peer-fault) peer_fault ;;
esac
