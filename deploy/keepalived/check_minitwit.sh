#!/usr/bin/env bash
# keepalived's health check. Exit 0 when healthy.
#   check_minitwit.sh self   this droplet: not drained, and GET /health through the
#                            local HAProxy answers 200 {"status": "ok"} (the app and its
#                            database both answer; see the README's /health)
#   check_minitwit.sh peer   the other droplet's /health over the VPC
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/keepalived/common.sh
. "$here/common.sh"

case "${1:-self}" in
  self)
    [ ! -e "$DRAIN_FILE" ] || exit 1
    healthy "$SELF_HEALTH_URL"
    ;;
  peer)
    [ -n "$PEER_HEALTH_URL" ] || exit 1  # no peer known: it is not serving
    healthy "$PEER_HEALTH_URL"
    ;;
  *) echo "usage: check_minitwit.sh self|peer" >&2; exit 2 ;;
esac
