#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres) exist.
# Looks where harness.infra.postgres looks: $PG_BIN, `pg_config --bindir`,
# /usr/lib/postgresql/*/bin. Installs Debian's package when missing and root;
# otherwise says what to install in one line and exits 2.
set -euo pipefail
have() { [ -n "$1" ] && [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }
if [ -n "${PG_BIN:-}" ]; then
  have "$PG_BIN" && exit 0
  echo "PG_BIN=$PG_BIN has no initdb/pg_ctl/postgres" >&2; exit 2
fi
if command -v pg_config >/dev/null 2>&1 && have "$(pg_config --bindir 2>/dev/null)"; then exit 0; fi
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do have "$d" && exit 0; done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries missing: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do have "$d" && exit 0; done
fi
echo "PostgreSQL server binaries not found: install Debian's 'postgresql' package (apt-get install -y postgresql) or set PG_BIN" >&2
exit 2
