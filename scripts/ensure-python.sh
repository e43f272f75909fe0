#!/usr/bin/env bash
# Make sure $1 (a Python >= 3.11) can create a virtualenv with pip. Debian's own
# /usr/bin/python3 needs the python3-venv package for that; installs it when missing
# and root, otherwise says what to install in one line and exits 2.
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "$py not found: install Python >= 3.11 or set PYTHON=" >&2; exit 2
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "$py is $("$py" -V 2>&1): thawproof needs Python >= 3.11" >&2; exit 2
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
"$py" -m venv "$probe/v" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$py" = /usr/bin/python3 ]; then
  echo "$py cannot make a virtualenv: installing Debian's python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq python3-venv >&2
  rm -rf "$probe/v"
  "$py" -m venv "$probe/v" >/dev/null 2>&1 && exit 0
fi
echo "$py cannot create a virtualenv: install its venv module (Debian: apt-get install -y python3-venv)" >&2
exit 2
