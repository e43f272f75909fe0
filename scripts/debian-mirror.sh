#!/usr/bin/env bash
# debian-mirror.sh [SUITE]: print the Debian mirror apt on this machine uses for
# SUITE (default bookworm) and component main, read from /etc/apt/sources.list.d/
# (deb822 *.sources and one-line *.list) and /etc/apt/sources.list. $DEBIAN_MIRROR
# wins when set. Exit 2 with one line when none is configured.
set -euo pipefail
suite=${1:-bookworm}
if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; exit 0; fi
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
  # deb822 stanzas are separated by blank lines; comment lines are not fields.
  found=$(grep -v '^[[:space:]]*#' "$f" | awk -v suite="$suite" '
    BEGIN { RS = ""; FS = "\n" }
    {
      types = ""; uris = ""; suites = ""; comps = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        split($i, kv, ":[[:space:]]*"); key = tolower(kv[1]); val = substr($i, length(kv[1]) + 2)
        gsub(/^[[:space:]]+|[[:space:]]+$/, "", val)
        if (key == "types") types = val; else if (key == "uris") uris = val
        else if (key == "suites") suites = val; else if (key == "components") comps = val
        else if (key == "enabled") enabled = tolower(val)
      }
      if (enabled == "no" || (" " types " ") !~ / deb / || (" " comps " ") !~ / main /) next
      if ((" " suites " ") !~ (" " suite " ")) next
      split(uris, u, /[[:space:]]+/); print u[1]; exit
    }')
  if [ -n "$found" ]; then echo "$found"; exit 0; fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  found=$(sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '
    $1 == "deb" && $3 == suite { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }')
  if [ -n "$found" ]; then echo "$found"; exit 0; fi
done
echo "debian-mirror.sh: no apt source for '$suite' main in /etc/apt; set DEBIAN_MIRROR" >&2
exit 2
