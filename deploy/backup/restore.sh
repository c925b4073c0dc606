#!/usr/bin/env bash
# Restore a backup made by backup.sh into a database.
#
#   restore.sh list                          the backups in BACKUP_DEST, oldest first
#   restore.sh NAME|latest TARGET_URL        restore one into the database at TARGET_URL
#
# The target database must exist (createdb, or the provider's console) and be
# empty: restoring over live tables is refused unless RESTORE_FORCE=1, which
# drops and recreates every object the dump contains. The dump is checked
# against its SHA-256 sidecar first, then restored in a single transaction, so
# a failed restore leaves the target as it was.
#
# Environment: BACKUP_DEST, BACKUP_PREFIX, S3_ENDPOINT and the AWS_* keys as for
# backup.sh; PG_RESTORE and PSQL name the binaries (default on PATH).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/backup/storage.sh
. "$here/storage.sh"

: "${BACKUP_DEST:?BACKUP_DEST is required (file:///path or s3://bucket/prefix)}"
pg_restore_bin="${PG_RESTORE:-pg_restore}"
psql_bin="${PSQL:-psql}"

backups_oldest_first() {
  store_list | while IFS= read -r object; do
    if stamp="$(backup_time "$object")"; then echo "$stamp $object"; fi
  done | sort -n | cut -d' ' -f2
}

case "${1:-}" in
  list) backups_oldest_first; exit 0 ;;
  "" | -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
[ $# -eq 2 ] || die "usage: restore.sh NAME|latest TARGET_URL"
name="$1"
target="$2"
[[ "$target" == postgres://* || "$target" == postgresql://* ]] || die "TARGET_URL must be a PostgreSQL URL"
if [ "$name" = latest ]; then
  name="$(backups_oldest_first | tail -n 1)"
  [ -n "$name" ] || die "no backups in $(dest_display)"
fi
backup_time "$name" >/dev/null || die "'$name' is not a backup name (${backup_prefix}-YYYYmmddTHHMMSSZ.dump)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "fetching $name from $(dest_display)"
store_get "$name" "$work/$name"
store_get "$name.sha256" "$work/$name.sha256"
(cd "$work" && sha256sum --check --quiet "$name.sha256") || die "$name does not match its checksum: refusing to restore it"

tables="$("$psql_bin" "$target" -X -At -v ON_ERROR_STOP=1 -c \
  "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")"
clean=()
if [ "$tables" != 0 ]; then
  [ "${RESTORE_FORCE:-0}" = 1 ] || die "the target database already has $tables tables: restore into an empty database, or set RESTORE_FORCE=1 to replace what the dump contains"
  clean=(--clean --if-exists)
fi

log "restoring $name"
"$pg_restore_bin" --no-owner --no-acl --exit-on-error --single-transaction "${clean[@]}" \
  --dbname="$target" "$work/$name"
log "restored $name"
