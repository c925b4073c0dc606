#!/usr/bin/env bash
# Release a MiniTwit image on this droplet (blue-green.sh runs it over SSH on
# the passive side; cloud-init runs it once at first boot).
#
#   release.sh TAG [REF]
#
# 1. With REF: check out the repository (/opt/minitwit) at that git ref, so the
#    stack file and these scripts match the release.
# 2. Pull $MINITWIT_IMAGE:TAG and run its migrations (`minitwit migrate`: they
#    only add, so the release still running on the other side keeps working).
# 3. `docker stack deploy` deploy/swarm/minitwit-stack.yml: a rolling update,
#    one replica at a time, started before the old one stops, rolled back by
#    Swarm if the new tasks fail their health check.
# 4. Wait until every replica runs TAG and /health answers through HAProxy.
#
# Settings: /etc/minitwit/release.env (MINITWIT_IMAGE, MINITWIT_REPLICAS) and
# /etc/minitwit/minitwit.env (the app's environment, secrets included).
set -euo pipefail
tag="${1:?usage: release.sh TAG [REF]}"
ref="${2:-}"
repo="${MINITWIT_REPO_DIR:-/opt/minitwit}"
etc="${MINITWIT_ETC:-/etc/minitwit}"
stack="${MINITWIT_STACK:-minitwit}"
timeout="${RELEASE_TIMEOUT_SECONDS:-600}"
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) release: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$tag' is not a valid image tag"
# shellcheck source=/dev/null
. "$etc/release.env"
: "${MINITWIT_IMAGE:?MINITWIT_IMAGE is not set in $etc/release.env}"
export MINITWIT_IMAGE MINITWIT_TAG="$tag" MINITWIT_REPLICAS="${MINITWIT_REPLICAS:-2}"
export MINITWIT_ENV_FILE="$etc/minitwit.env" MINITWIT_DB_CA_FILE="$etc/db-ca.crt"

if [ -n "$ref" ]; then
  log "checking out $ref"
  git -C "$repo" fetch --quiet --depth 1 origin "$ref"
  git -C "$repo" checkout --quiet --detach FETCH_HEAD
fi
image="$MINITWIT_IMAGE:$tag"
log "pulling $image"
docker pull --quiet "$image" >/dev/null

log "migrating the database"
docker run --rm --env-file "$MINITWIT_ENV_FILE" \
  --env PGSSLMODE=verify-ca --env PGSSLROOTCERT=/run/secrets/db-ca.crt \
  --volume "$MINITWIT_DB_CA_FILE:/run/secrets/db-ca.crt:ro" \
  "$image" migrate  # the image's entrypoint is `minitwit`

log "deploying $image x$MINITWIT_REPLICAS"
MINITWIT_REVISION="$(git -C "$repo" rev-parse --short HEAD)" \
  docker stack deploy --with-registry-auth --prune \
  --compose-file "$repo/deploy/swarm/minitwit-stack.yml" "$stack"

deadline=$((SECONDS + timeout))
until [ "$(docker service ls --filter "name=${stack}_app" --format '{{.Replicas}}')" = "$MINITWIT_REPLICAS/$MINITWIT_REPLICAS" ] &&
  [ "$(docker service inspect "${stack}_app" --format '{{.UpdateStatus.State}}' 2>/dev/null)" != updating ] &&
  [[ "$(docker service inspect "${stack}_app" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}')" == "$image"* ]] &&
  curl --silent --fail --max-time 3 http://127.0.0.1/health >/dev/null; do
  [ "$(docker service inspect "${stack}_app" --format '{{.UpdateStatus.State}}' 2>/dev/null)" != rollback_completed ] ||
    die "Swarm rolled the update back: the new tasks failed their health check"
  [ "$SECONDS" -lt "$deadline" ] || die "$image did not converge within ${timeout}s"
  sleep 5
done
echo "$tag" >"$etc/released-tag"
log "$image is serving"
