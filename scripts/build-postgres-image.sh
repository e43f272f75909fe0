#!/usr/bin/env bash
# build-postgres-image.sh [TAG]: a Docker image with Debian bookworm's PostgreSQL 15
# binaries, built from Debian packages only (no registry is pulled from), once:
# when the engine at DOCKER_HOST already has TAG (docker image inspect), nothing
# is done. Default TAG: thawproof/postgres:15-bookworm.
#
# The image has no entrypoint of its own: ContainerPostgres runs initdb and
# postgres inside it as the `postgres` account (see harness/infra/container.py).
# The mirror is the one apt uses here (scripts/debian-mirror.sh; DEBIAN_MIRROR wins).
set -euo pipefail
tag=${1:-thawproof/postgres:15-bookworm}
here=$(cd "$(dirname "$0")" && pwd)

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "build-postgres-image.sh: $tag is cached in the engine; not rebuilt" >&2
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] \
  || { echo "build-postgres-image.sh: debootstrap not found (scripts/ensure-docker.sh installs it)" >&2; exit 2; }
mirror=$("$here/debian-mirror.sh" bookworm)

work=$(mktemp -d /tmp/thawproof-image.XXXXXX)
rootfs=$work/rootfs
log=$work/debootstrap.log
cleanup() {
  # debootstrap mounts /proc and /sys inside the tree while it works; never
  # delete through a mount.
  findmnt -rn -o TARGET | grep -F "$work" | sort -r | while read -r m; do umount -l "$m" || true; done || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "build-postgres-image.sh: debootstrap bookworm (minbase + postgresql-15) into $rootfs" >&2
start=$SECONDS
if ! debootstrap --variant=minbase --include=postgresql-15 bookworm "$rootfs" "$mirror" \
  >"$log" 2>&1; then
  echo "build-postgres-image.sh: debootstrap failed; the end of its log:" >&2
  tail -n 20 "$log" >&2
  exit 2
fi
# Package caches and the cluster Debian's postinst made are not needed in the image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/lib/postgresql/15/main "$rootfs"/etc/postgresql/15/main
[ -x "$rootfs"/usr/lib/postgresql/15/bin/postgres ] \
  || { echo "build-postgres-image.sh: no postgres binary in the tree" >&2; exit 2; }
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'LABEL org.thawproof.image="postgresql-15 binaries from Debian bookworm, no entrypoint"' \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
echo "build-postgres-image.sh: built $tag in $((SECONDS - start)) s ($(docker image inspect --format '{{.Size}}' "$tag") bytes)" >&2
