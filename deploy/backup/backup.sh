#!/usr/bin/env bash
# Back up the MiniTwit database: pg_dump (custom format) to a timestamped file,
# copy it with a SHA-256 sidecar to BACKUP_DEST, then prune the backups older
# than BACKUP_RETENTION_DAYS. Restore with restore.sh (same directory).
#
#   DATABASE_URL           postgres://user:password@host:port/db (required)
#   BACKUP_DEST            file:///var/backups/minitwit or s3://bucket/prefix (required)
#   BACKUP_RETENTION_DAYS  days a backup is kept (default 14; 0 keeps everything)
#   BACKUP_PREFIX          object name prefix (default minitwit)
#   S3_ENDPOINT            S3 endpoint for s3:// (Spaces: https://fra1.digitaloceanspaces.com)
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   the Spaces key, for s3://
#   PG_DUMP / PG_RESTORE   the binaries (default pg_dump / pg_restore on PATH;
#                          their major version must be >= the server's)
#
# Names are <prefix>-YYYYmmddTHHMMSSZ.dump (UTC). Pruning reads the time from
# the name, never from file dates, and touches nothing that does not match it.
# Prints the name of the backup it made on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/backup/storage.sh
. "$here/storage.sh"

: "${DATABASE_URL:?DATABASE_URL is required}"
: "${BACKUP_DEST:?BACKUP_DEST is required (file:///path or s3://bucket/prefix)}"
retention_days="${BACKUP_RETENTION_DAYS:-14}"
[[ "$retention_days" =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days, got '$retention_days'"
pg_dump_bin="${PG_DUMP:-pg_dump}"
pg_restore_bin="${PG_RESTORE:-pg_restore}"

# The app's URL may say postgres://; libpq takes both spellings.
db_url="$DATABASE_URL"
[[ "$db_url" == postgres://* || "$db_url" == postgresql://* ]] || die "DATABASE_URL must be a PostgreSQL URL"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
name="$(backup_name "$(date -u +%Y%m%dT%H%M%SZ)")"

log "dumping to $name"
"$pg_dump_bin" --format=custom --compress=6 --no-owner --no-acl --file="$work/$name" "$db_url"
# A dump pg_restore cannot list is not a backup: fail now, not on restore day.
"$pg_restore_bin" --list "$work/$name" >/dev/null || die "pg_restore cannot read the dump just made"
(cd "$work" && sha256sum "$name" >"$name.sha256")

store_put "$work/$name" "$name"
store_put "$work/$name.sha256" "$name.sha256"
log "stored $name ($(stat -c %s "$work/$name") bytes) in $(dest_display)"

if [ "$retention_days" -gt 0 ]; then
  cutoff="$(($(date -u +%s) - retention_days * 86400))"
  while IFS= read -r object; do
    stamp="$(backup_time "$object")" || continue
    [ "$object" = "$name" ] && continue  # never the backup just made
    if [ "$stamp" -lt "$cutoff" ]; then
      log "pruning $object (older than $retention_days days)"
      store_delete "$object"
      store_delete "$object.sha256" 2>/dev/null || true
    fi
  done < <(store_list)
fi
echo "$name"
