#!/usr/bin/env bash
# ensure-docker.sh: make sure what `make test-containers` needs is installed:
# dockerd and a docker client (Debian's docker.io) and debootstrap (to build the
# local PostgreSQL image). Installs the missing Debian packages when root;
# otherwise says what to install in one line and exits 2.
set -euo pipefail
check() {
  missing=()
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    missing+=(docker.io)
  fi
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  [ "${#missing[@]}" -eq 0 ]
}
check && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-docker.sh: installing Debian's ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  check && exit 0
fi
echo "ensure-docker.sh: missing ${missing[*]}: install Debian's package(s) (apt-get install -y ${missing[*]})" >&2
exit 2
