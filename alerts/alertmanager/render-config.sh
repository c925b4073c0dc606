#!/bin/sh
# Render the Alertmanager configuration template from the environment, then run
# the given command (the Compose service's entrypoint):
#
#   render-config.sh TEMPLATE OUTPUT [COMMAND [ARG...]]
#
# ${NAME} is replaced by the environment variable NAME, which must be set and
# non-empty (every missing one is named, and nothing is written);
# ${NAME:-default} falls back to the default when NAME is unset or empty.
# Values are escaped for YAML double-quoted strings (\ " and newlines), so a
# quote in a password cannot change the configuration's structure. Comment
# lines are copied unchanged. POSIX sh and
# awk only: it runs in the busybox-based prom/alertmanager image as it is.
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 TEMPLATE OUTPUT [COMMAND [ARG...]]" >&2
  exit 2
fi
template=$1
output=$2
shift 2
umask 077 # the output holds secrets
awk '
function quoted(s,    r, c, k) {
  r = ""
  for (k = 1; k <= length(s); k++) {
    c = substr(s, k, 1)
    if (c == "\\" || c == "\"") r = r "\\" c
    else if (c == "\n") r = r "\\n"
    else r = r c
  }
  return r
}
/^[ \t]*#/ { print; next } # comments are copied as they are
{
  line = $0
  out = ""
  while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}/)) {
    token = substr(line, RSTART + 2, RLENGTH - 3)
    name = token
    fallback = ""
    split_at = index(token, ":-")
    if (split_at > 0) {
      name = substr(token, 1, split_at - 1)
      fallback = substr(token, split_at + 2)
    }
    value = (name in ENVIRON) ? ENVIRON[name] : ""
    if (value == "" && split_at > 0) value = fallback
    else if (value == "" && !(name in missing)) {
      missing[name] = 1
      missing_list = missing_list " " name
    }
    out = out substr(line, 1, RSTART - 1) quoted(value)
    line = substr(line, RSTART + RLENGTH)
  }
  print out line
}
END {
  if (missing_list != "") {
    print "render-config.sh: set these environment variables:" missing_list > "/dev/stderr"
    exit 1
  }
}
' "$template" >"$output.tmp" || {
  rm -f "$output.tmp"
  exit 1
}
mv "$output.tmp" "$output"
if [ $# -gt 0 ]; then
  exec "$@"
fi
