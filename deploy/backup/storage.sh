# shellcheck shell=bash
# Where backups live, behind four functions, so backup.sh and restore.sh do
# not care whether BACKUP_DEST is a directory or a bucket:
#   file:///abs/path       a local (or mounted) directory
#   s3://bucket[/prefix]   an S3 bucket, DigitalOcean Spaces included, through
#                          the AWS CLI (`aws s3`) with --endpoint-url $S3_ENDPOINT
# Sourced, not run.

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >&2; }
die() { log "error: $*"; exit 1; }

backup_prefix="${BACKUP_PREFIX:-minitwit}"
[[ "$backup_prefix" =~ ^[A-Za-z0-9._-]+$ ]] || die "BACKUP_PREFIX may hold letters, digits, '.', '_' and '-' only"

backup_name() { echo "${backup_prefix}-$1.dump"; }

# The epoch seconds a backup's name records, or failure when the name is not
# one of ours (so pruning never touches anything else in the bucket).
backup_time() {
  local re="^${backup_prefix//./\\.}-([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z\\.dump$"
  [[ "$1" =~ $re ]] || return 1
  date -u -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]} ${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]}" +%s
}

case "${BACKUP_DEST:-}" in
  file:///?*) dest_kind="file"; dest_dir="${BACKUP_DEST#file://}"; dest_dir="${dest_dir%/}" ;;
  s3://?*) dest_kind="s3"; dest_url="${BACKUP_DEST%/}" ;;
  "") dest_kind="none" ;;
  *) die "BACKUP_DEST must be file:///absolute/path or s3://bucket[/prefix], got '$BACKUP_DEST'" ;;
esac

aws_s3() {
  command -v aws >/dev/null || die "the AWS CLI (aws) is needed for s3:// destinations"
  aws ${S3_ENDPOINT:+--endpoint-url "$S3_ENDPOINT"} s3 "$@"
}

dest_display() {
  case "$dest_kind" in file) echo "$dest_dir" ;; s3) echo "$dest_url" ;; *) echo none ;; esac
}

store_put() {  # LOCAL_FILE NAME
  case "$dest_kind" in
    file)
      mkdir -p "$dest_dir"
      # Copy then rename: a reader never sees half a file under the final name.
      cp "$1" "$dest_dir/.$2.partial"
      mv -f "$dest_dir/.$2.partial" "$dest_dir/$2"
      ;;
    s3) aws_s3 cp --only-show-errors "$1" "$dest_url/$2" ;;
    *) die "BACKUP_DEST is required" ;;
  esac
}

store_get() {  # NAME LOCAL_FILE
  case "$dest_kind" in
    file) [ -f "$dest_dir/$1" ] || die "no backup named $1 in $dest_dir"; cp "$dest_dir/$1" "$2" ;;
    s3) aws_s3 cp --only-show-errors "$dest_url/$1" "$2" ;;
    *) die "BACKUP_DEST is required" ;;
  esac
}

store_delete() {  # NAME
  case "$dest_kind" in
    file) rm "$dest_dir/$1" ;;
    s3) aws_s3 rm --only-show-errors "$dest_url/$1" ;;
    *) die "BACKUP_DEST is required" ;;
  esac
}

store_list() {  # every object name directly under the destination, one a line
  case "$dest_kind" in
    file) [ -d "$dest_dir" ] || return 0; find "$dest_dir" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' ;;
    s3) aws_s3 ls "$dest_url/" | awk '$1 != "PRE" { print $4 }' ;;
    *) die "BACKUP_DEST is required" ;;
  esac
}
