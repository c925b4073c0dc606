# shellcheck shell=bash
# Settings shared by render.sh, check_minitwit.sh and failover.sh. Sourced.
#
# /etc/minitwit/failover.env (written by cloud-init; FAILOVER_ENV overrides the path):
#   PUBLIC_IP, STANDBY_IP   the two reserved IPs
#   DROPLET_TAG             the tag both droplets carry (finds the peer)
#   SIDE                    blue or green
#   PREFERRED               1 on the side that claims the public IP first on a fresh start
#   DO_TOKEN_FILE           the API token (scoped: reserved_ip, droplet:read, actions:read)
#   VRRP_INTERFACE          the VPC interface (eth1)
# /run/minitwit/failover-runtime.env (written by render.sh at keepalived start):
#   SELF_ID, SELF_PRIVATE_IP, PEER_ID, PEER_PRIVATE_IP
here_common="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY_DIR="${DEPLOY_DIR:-$(dirname "$here_common")}"
FAILOVER_ENV="${FAILOVER_ENV:-/etc/minitwit/failover.env}"
FAILOVER_RUNTIME_ENV="${FAILOVER_RUNTIME_ENV:-/run/minitwit/failover-runtime.env}"
# shellcheck source=/dev/null
[ -r "$FAILOVER_ENV" ] && . "$FAILOVER_ENV"
# shellcheck source=/dev/null
[ -r "$FAILOVER_RUNTIME_ENV" ] && . "$FAILOVER_RUNTIME_ENV"
# shellcheck source=deploy/lib/do-api.sh
. "$DEPLOY_DIR/lib/do-api.sh"

METADATA_URL="${METADATA_URL:-http://169.254.169.254/metadata/v1}"
DRAIN_FILE="${DRAIN_FILE:-/etc/minitwit/drain}"
SELF_HEALTH_URL="${SELF_HEALTH_URL:-http://127.0.0.1/health}"
PEER_HEALTH_URL="${PEER_HEALTH_URL:-${PEER_PRIVATE_IP:+http://$PEER_PRIVATE_IP/health}}"
PUBLIC_HEALTH_URL="${PUBLIC_HEALTH_URL:-${PUBLIC_IP:+http://$PUBLIC_IP/health}}"
