#!/usr/bin/env bash
# Make sure a pgbouncer binary exists (the `pgbouncer` and `lease-pgbouncer` drivers
# run a real one). Looks where harness.infra.pgbouncer looks: $PGBOUNCER, PATH,
# /usr/sbin. Installs Debian's package (1.18 on Debian 12) when missing and root;
# the package's own service is never started here (the harness runs its own).
# Otherwise says what to install in one line and exits 2.
set -euo pipefail
if [ -n "${PGBOUNCER:-}" ]; then
  [ -x "$PGBOUNCER" ] && exit 0
  echo "PGBOUNCER=$PGBOUNCER is not executable" >&2; exit 2
fi
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pgbouncer missing: installing Debian's pgbouncer package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # policy-rc.d 101: the package's service must not start (the harness runs its own)
  restore=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    restore="rm -f /usr/sbin/policy-rc.d"
  fi
  apt-get install -y -qq pgbouncer >&2 || { $restore; exit 2; }
  $restore
  [ -x /usr/sbin/pgbouncer ] && exit 0
fi
echo "pgbouncer not found: install Debian's 'pgbouncer' package (apt-get install -y pgbouncer) or set PGBOUNCER" >&2
exit 2
