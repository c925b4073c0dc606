#!/usr/bin/env bash
# Blue-green releases on the two MiniTwit droplets. The public reserved IP
# points at the active side; the standby reserved IP at the passive side, which
# runs the previous release and is where the next one goes.
#
#   blue-green.sh status              which droplet holds which IP, and their health
#   blue-green.sh deploy TAG [REF]    release image TAG (and the repository at git REF) on
#                                     the passive side, wait for its /health, smoke-check
#                                     it, swap the IPs, check the public IP; if that fails,
#                                     swap straight back
#   blue-green.sh swap                make the passive side active (it must be healthy)
#   blue-green.sh rollback            swap back: the previous release still runs on the
#                                     passive side, so this undoes the last deploy
#
# Environment (`terraform -chdir=terraform output -raw blue_green_env` prints the first two):
#   PUBLIC_IP, STANDBY_IP   the reserved IPs
#   DIGITALOCEAN_TOKEN      an API token allowed to read droplets and update reserved IPs
#   SSH                     how to reach a droplet (default: ssh -o BatchMode=yes)
#   SSH_USER                default root
#   URL_TEMPLATE            the base URL of a side, {ip} standing for its IP (default http://{ip})
#   SMOKE_PATHS             paths that must answer 200 before the swap (default "/public /api/latest")
#   HEALTH_TIMEOUT_SECONDS  how long the passive side may take to become healthy (default 300)
#   POST_SWAP_TIMEOUT_SECONDS  how long the public IP may take to answer after a swap (default 60)
#   DRY_RUN=1               print the SSH command and the API calls that would change
#                           something, and change nothing
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
[ $# -gt 0 ] || usage  # before anything the environment must provide
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib/do-api.sh
. "$here/lib/do-api.sh"
DO_LOG_TAG="blue-green"

: "${PUBLIC_IP:?PUBLIC_IP is required (terraform output blue_green_env)}"
: "${STANDBY_IP:?STANDBY_IP is required (terraform output blue_green_env)}"
SSH="${SSH:-ssh -o BatchMode=yes -o ConnectTimeout=10}"
SSH_USER="${SSH_USER:-root}"
URL_TEMPLATE="${URL_TEMPLATE:-"http://{ip}"}"
SMOKE_PATHS="${SMOKE_PATHS:-/public /api/latest}"
HEALTH_TIMEOUT_SECONDS="${HEALTH_TIMEOUT_SECONDS:-300}"
POLL_SECONDS="${POLL_SECONDS:-5}"

base_url() { echo "${URL_TEMPLATE//\{ip\}/$1}"; }

wait_healthy() {  # IP SECONDS
  local deadline=$((SECONDS + $2))
  until healthy "$(base_url "$1")/health"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep "$POLL_SECONDS"
  done
}

smoke() {  # IP
  local path code
  for path in $SMOKE_PATHS; do
    code="$(curl --silent --output /dev/null --max-time 10 --write-out '%{http_code}' "$(base_url "$1")$path" || true)"
    if [ "$code" != 200 ]; then
      do_log "smoke check failed: GET $path on $1 answered ${code:-nothing}"
      return 1
    fi
    do_log "smoke check: GET $path on $1 answered 200"
  done
}

sides() {  # sets active and passive (droplet ids)
  active="$(do_reserved_ip_holder "$PUBLIC_IP")"
  passive="$(do_reserved_ip_holder "$STANDBY_IP")"
  [ -n "$active" ] || do_die "the public IP $PUBLIC_IP is not assigned to any droplet"
  [ -n "$passive" ] || do_die "the standby IP $STANDBY_IP is not assigned to any droplet"
  [ "$active" != "$passive" ] || do_die "both IPs point at droplet $active"
}

# After a swap that failed part way (a droplet holds one reserved IP at a time,
# so the standby IP is unassigned in between): put both IPs where they were
# meant to be, public on droplet ACTIVE, standby on PASSIVE, and say whether
# that worked, then stop.
put_back() {  # ACTIVE PASSIVE WHAT-FAILED
  if do_swap "$PUBLIC_IP" "$STANDBY_IP" "$1" "$2"; then
    do_die "$3; put back: public $PUBLIC_IP on droplet $1, standby $STANDBY_IP on droplet $2"
  fi
  do_die "$3, and putting the IPs back failed too: public $PUBLIC_IP belongs on droplet $1, standby $STANDBY_IP on droplet $2 ('$0 status' shows where they are; assign them in the DigitalOcean console)"
}

# Make the passive side active; the old active side becomes passive, still
# running its release (that is what rollback swaps back to). EXPECTED, when
# given, is the droplet that must be the passive side (the one just released).
swap() {  # REASON [EXPECTED]
  sides
  if [ -n "${2:-}" ] && [ "$passive" != "$2" ]; then
    do_die "the IPs moved during the release (a keepalived failover?): droplet $2 runs it, but the standby IP now points at droplet $passive; not swapping ('$0 status', then deploy again)"
  fi
  if [ "${DRY_RUN:-0}" != 1 ]; then
    healthy "$(base_url "$STANDBY_IP")/health" || do_die "the passive side ($STANDBY_IP) is not healthy: not swapping"
  fi
  do_log "$1: public $PUBLIC_IP -> droplet $passive, standby $STANDBY_IP -> droplet $active"
  do_swap "$PUBLIC_IP" "$STANDBY_IP" "$passive" "$active" || put_back "$active" "$passive" "the swap failed"
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  if ! wait_healthy "$PUBLIC_IP" "${POST_SWAP_TIMEOUT_SECONDS:-60}"; then
    do_log "the public IP does not answer healthy after the swap: swapping back"
    if do_swap "$PUBLIC_IP" "$STANDBY_IP" "$active" "$passive"; then
      do_die "swapped back to droplet $active"
    fi
    put_back "$active" "$passive" "swapping back to droplet $active failed"
  fi
  do_log "droplet $passive is active"
}

deploy() {  # TAG [REF]
  local tag="$1" ref="${2:-}" remote failed
  [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || do_die "'$tag' is not a valid image tag"
  [[ -z "$ref" || "$ref" =~ ^[A-Za-z0-9_./-]+$ ]] || do_die "'$ref' is not a valid git ref"
  sides
  remote="/opt/minitwit/deploy/release.sh $tag${ref:+ $ref}"
  do_log "releasing $tag on the passive droplet $passive ($STANDBY_IP)"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "DRY-RUN $SSH $SSH_USER@$STANDBY_IP $remote"
  else
    # The passive side may now run the failed release: a rollback or a swap
    # would put it live (and keepalived would fail over to it), until a good
    # release is deployed there.
    failed="the active side is untouched; droplet $passive may now run the failed $tag: deploy a good tag before any swap or rollback"
    # shellcheck disable=SC2086  # SSH is a command with its options
    $SSH "$SSH_USER@$STANDBY_IP" "$remote" || do_die "the release on $STANDBY_IP failed; $failed"
    wait_healthy "$STANDBY_IP" "$HEALTH_TIMEOUT_SECONDS" ||
      do_die "$STANDBY_IP did not become healthy within ${HEALTH_TIMEOUT_SECONDS}s; $failed"
    smoke "$STANDBY_IP" || do_die "the passive side failed its smoke checks; $failed"
  fi
  swap "deploy $tag" "$passive"
}

status() {
  local side ip holder health
  for side in public standby; do
    if [ "$side" = public ]; then ip="$PUBLIC_IP"; else ip="$STANDBY_IP"; fi
    holder="$(do_reserved_ip_holder "$ip")"
    if healthy "$(base_url "$ip")/health"; then health=healthy; else health=unhealthy; fi
    if [ -n "$holder" ]; then
      echo "$side $ip -> $(do_droplet_name "$holder") ($holder) $health"
    else
      echo "$side $ip -> unassigned"
    fi
  done
}

case "${1:-}" in
  status) status ;;
  deploy) [ $# -ge 2 ] || do_die "usage: blue-green.sh deploy TAG [REF]"; deploy "$2" "${3:-}" ;;
  swap) swap "swap" ;;
  rollback) swap "rollback" ;;
  *) usage ;;
esac
