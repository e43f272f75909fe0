#!/usr/bin/env bash
# test-containers.sh PYTHON [PYTEST_ARG...]: what `make test-containers` runs.
#
# 1. installs Debian's docker.io and debootstrap when missing (ensure-docker.sh);
# 2. starts a private dockerd (--bridge=none: host networking only), owned by
#    with-dockerd.sh, which stops it on every exit path;
# 3. builds the local PostgreSQL 15 image once (build-postgres-image.sh; cached by
#    tag in the engine's data root, .docker-engine/ unless THAWPROOF_DOCKER_ROOT);
# 4. runs the tests marked `docker` with THAWPROOF_REQUIRE_DOCKER=1, so they fail
#    instead of skipping if the engine or image is missing.
# Ryuk (testcontainers' reaper container) is off: its image cannot be pulled
# here, and ContainerPostgres removes its own containers.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$1
shift
image=${THAWPROOF_LOCAL_IMAGE:-thawproof/postgres:15-bookworm}
scripts/ensure-docker.sh
export TESTCONTAINERS_RYUK_DISABLED=true
export THAWPROOF_REQUIRE_DOCKER=1
export THAWPROOF_CONTAINER_IMAGES=${THAWPROOF_CONTAINER_IMAGES:-$image}
export THAWPROOF_CONTAINER_NETWORK=host
exec scripts/with-dockerd.sh bash -c '
  set -euo pipefail
  scripts/build-postgres-image.sh "$1"
  shift
  exec "$@"
' build-then-test "$image" "$python" -m pytest -m docker "$@"
