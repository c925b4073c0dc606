#!/usr/bin/env bash
# Run before keepalived starts (ExecStartPre): find this droplet and its peer,
# write /run/minitwit/failover-runtime.env and render keepalived.conf.
#
#   render.sh [OUTPUT]   (default /etc/keepalived/keepalived.conf)
#
# The peer is the other droplet tagged $DROPLET_TAG, found through the API, so
# neither droplet's cloud-init needs the other's address (Terraform could not
# give it without a dependency cycle). A replaced peer is picked up at the next
# `systemctl restart keepalived`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/keepalived/common.sh
. "$here/common.sh"
DO_LOG_TAG="minitwit-render"
output="${1:-/etc/keepalived/keepalived.conf}"

: "${DROPLET_TAG:?DROPLET_TAG is not set (see $FAILOVER_ENV)}"
case "${SIDE:-}" in
  blue) vrid_self=51; vrid_peer=52 ;;
  green) vrid_self=61; vrid_peer=62 ;;
  *) do_die "SIDE must be blue or green, got '${SIDE:-}'" ;;
esac
self_id="$(curl -fsS --max-time 3 "$METADATA_URL/id")" || do_die "cannot read the droplet id from $METADATA_URL"
self_ip="$(curl -fsS --max-time 3 "$METADATA_URL/interfaces/private/0/ipv4/address")" ||
  do_die "cannot read the VPC address from $METADATA_URL"

droplets="$(do_api GET "/v2/droplets?tag_name=$DROPLET_TAG&per_page=200")" || do_die "cannot list the droplets tagged $DROPLET_TAG"
peers="$(jq -r --argjson self "$self_id" \
  '.droplets[] | select(.id != $self) | "\(.id) \([.networks.v4[] | select(.type == "private") | .ip_address][0] // "")"' \
  <<<"$droplets")"
[ "$(grep -c . <<<"$peers")" -le 1 ] || do_die "more than one other droplet is tagged $DROPLET_TAG: $peers"
read -r peer_id peer_ip <<<"$peers" || true
[ -n "${peer_id:-}" ] || do_log "warning: no peer tagged $DROPLET_TAG yet; failover needs one"

mkdir -p "$(dirname "$FAILOVER_RUNTIME_ENV")"
umask 022
cat >"$FAILOVER_RUNTIME_ENV.tmp" <<ENV
SELF_ID=$self_id
SELF_PRIVATE_IP=$self_ip
PEER_ID=${peer_id:-}
PEER_PRIVATE_IP=${peer_ip:-}
ENV
mv -f "$FAILOVER_RUNTIME_ENV.tmp" "$FAILOVER_RUNTIME_ENV"

sed -e "s|@SIDE@|$SIDE|g" \
  -e "s|@DEPLOY_DIR@|$DEPLOY_DIR|g" \
  -e "s|@VRRP_INTERFACE@|${VRRP_INTERFACE:-eth1}|g" \
  -e "s|@VRID_SELF@|$vrid_self|g" \
  -e "s|@VRID_PEER@|$vrid_peer|g" \
  "$here/keepalived.conf.tmpl" >"$output.tmp"
if grep -q '@[A-Z_]*@' "$output.tmp"; then
  do_die "unfilled placeholders in $output.tmp"
fi
mv -f "$output.tmp" "$output"
do_log "rendered $output (self $self_id $self_ip, peer ${peer_id:-none} ${peer_ip:-})"
