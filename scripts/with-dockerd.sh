#!/usr/bin/env bash
# with-dockerd.sh CMD [ARG...]: run CMD with a private Docker engine, then stop it.
#
# The engine is this script's own: started here, reached through DOCKER_HOST at
# a socket in a temp dir, and stopped again on every exit path (CMD's failure,
# Ctrl-C, SIGTERM). It runs with no network of its own: --bridge=none (no
# docker0, no default bridge: containers here use host networking only),
# --iptables=false --ip6tables=false --ip-forward=false (the host's firewall
# and sysctls are left alone), and an empty config file (a system daemon.json
# cannot turn any of that back on).
#
#   exec root (socket, pid file, log, containerd state): a fresh temp dir, removed
#   data root (images, so a built image is cached): $THAWPROOF_DOCKER_ROOT,
#       default .docker-engine/ in the project; one run at a time uses it (flock)
#
# A container still present when CMD ends is a leak: it is removed and the
# script exits non-zero. Exit status: CMD's, else 1 for a leak, 2 when the
# engine cannot start.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "with-dockerd.sh: dockerd must run as root (run as root, or start your own engine and set DOCKER_HOST)" >&2
  exit 2
fi
command -v dockerd >/dev/null || { echo "with-dockerd.sh: dockerd not found (scripts/ensure-docker.sh installs it)" >&2; exit 2; }
command -v docker >/dev/null || { echo "with-dockerd.sh: the docker client not found (package docker.io)" >&2; exit 2; }

data_root=${THAWPROOF_DOCKER_ROOT:-$(pwd)/.docker-engine}
mkdir -p "$data_root"
exec 9>"$data_root.lock"
if ! flock -n 9; then
  echo "with-dockerd.sh: another run holds $data_root.lock; wait for it to finish" >&2
  exit 2
fi

# Fixed places dockerd and containerd create whatever their roots (plugin specs,
# shim sockets): removed at the end when this run made them and they are empty.
created_run_dirs=()
for d in /run/docker /run/containerd; do [ -e "$d" ] || created_run_dirs+=("$d"); done

exec_root=$(mktemp -d /tmp/thawproof-dockerd.XXXXXX)
sock="$exec_root/docker.sock"
log="$exec_root/dockerd.log"
dockerd_pid=""

# Alive and not a zombie waiting to be reaped (kill -0 succeeds on a zombie).
alive() {
  local state
  state=$(sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Wait up to $2 seconds for pid $1 to end; 0 when it did.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$dockerd_pid" ] && alive "$dockerd_pid"; then
    leftover=$(DOCKER_HOST="unix://$sock" docker ps -aq 2>/dev/null || true)
    if [ -n "$leftover" ]; then
      echo "with-dockerd.sh: containers left behind (a leak): $(echo "$leftover" | tr '\n' ' ')" >&2
      DOCKER_HOST="unix://$sock" docker rm -f $leftover >/dev/null 2>&1 || true
      [ "$rc" -ne 0 ] || rc=1
    fi
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    if ! wait_gone "$dockerd_pid" 30; then
      echo "with-dockerd.sh: dockerd $dockerd_pid ignored SIGTERM for 30 s: SIGKILL" >&2
      kill -KILL "$dockerd_pid" 2>/dev/null || true
      wait_gone "$dockerd_pid" 10 || true
    fi
  fi
  [ -z "$dockerd_pid" ] || wait "$dockerd_pid" 2>/dev/null || true
  # dockerd stops the containerd it started; if it was killed, containerd is ours to end.
  for f in "$exec_root"/exec/containerd/containerd.pid; do
    [ -f "$f" ] || continue
    cpid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$cpid" ] && alive "$cpid" && grep -qa containerd "/proc/$cpid/cmdline"; then
      kill -TERM "$cpid" 2>/dev/null || true
      wait_gone "$cpid" 10 || kill -KILL "$cpid" 2>/dev/null || true
    fi
  done
  # Mounts the engine may have left under its exec root, innermost first.
  findmnt -rn -o TARGET | grep -F "$exec_root" | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done || true
  rm -rf --one-file-system "$exec_root"
  for d in "${created_run_dirs[@]}"; do
    [ -d "$d" ] && find "$d" -depth -type d -empty -delete 2>/dev/null || true
  done
  exit "$rc"
}
child=""
# A signal ends CMD first (SIGTERM: a background child ignores SIGINT; the test
# suite unwinds on SIGTERM as on Ctrl-C), then the engine.
on_signal() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

echo '{}' >"$exec_root/daemon.json"
dockerd \
  --config-file "$exec_root/daemon.json" \
  --host "unix://$sock" \
  --pidfile "$exec_root/docker.pid" \
  --exec-root "$exec_root/exec" \
  --data-root "$data_root" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
  --log-level=warn \
  >"$log" 2>&1 &
dockerd_pid=$!

deadline=$((SECONDS + 60))
until DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
  if ! alive "$dockerd_pid"; then
    echo "with-dockerd.sh: dockerd exited before answering; its log:" >&2
    tail -n 20 "$log" >&2
    exit 2
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "with-dockerd.sh: dockerd did not answer within 60 s; its log:" >&2
    tail -n 20 "$log" >&2
    exit 2
  fi
  sleep 0.1
done
echo "with-dockerd.sh: dockerd $(DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}') (pid $dockerd_pid) at unix://$sock, data root $data_root" >&2

export DOCKER_HOST="unix://$sock"
# In the background, so a signal is handled at once (wait returns), not after CMD.
"$@" <&0 &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=""
exit "$rc"
