#!/usr/bin/env bash
# Installs and starts a Docker engine that can run kind nodes on this kind of host.
#
# Usage: hack/kind/install-engine.sh
#
#   1. apt: docker.io (dockerd 20.10, containerd, runc), debootstrap, jq, libseccomp-dev (runc
#      build), when missing;
#   2. builds our runc wrapper (hack/kind/runc-capfix/) into /usr/local/lib/stepline/ and links
#      the real runc next to it: the host's capability bounding set lacks CAP_SYS_RESOURCE, so
#      `docker run --privileged` (every kind node) fails "unable to apply caps" without it;
#   3. writes /etc/docker/daemon.json making the wrapper the default runtime;
#   4. starts dockerd in the background (log: $STEPLINE_CACHE/logs/kind/dockerd.log) unless a
#      daemon already answers, and waits for `docker info`.
# Idempotent: a second run changes nothing and returns in about a second.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"

[ "$(id -u)" = 0 ] || die "engine: must run as root (installs packages, writes /etc/docker/daemon.json)"
require_go

packages=(docker.io debootstrap jq libseccomp-dev pigz)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  info "engine: apt-get install ${missing[*]} (log: $KIND_LOGS/apt.log)"
  run_logged "engine (apt)" "$KIND_LOGS/apt.log" \
    env DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${missing[*]}"
fi

# The docker CLI: Debian's client is /usr/bin/docker; any newer client on PATH also works (it
# negotiates API 1.41 with dockerd 20.10).
command -v docker >/dev/null || die "engine: no docker CLI after installing docker.io"

# runc wrapper.
wrapper_src="$here/runc-capfix"
wrapper_new="$KIND_CACHE/runc-capfix.$$"
(cd "$wrapper_src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$wrapper_new" .) \
  >"$KIND_LOGS/build-runc-capfix.log" 2>&1 ||
  die "engine (runc wrapper): go build failed; see $KIND_LOGS/build-runc-capfix.log"
mkdir -p "$(dirname "$RUNC_WRAPPER")"
if ! cmp -s "$wrapper_new" "$RUNC_WRAPPER"; then
  info "engine: installing the runc wrapper at $RUNC_WRAPPER"
  mv "$wrapper_new" "$RUNC_WRAPPER"
else
  rm -f "$wrapper_new"
fi
real_runc=$(command -v runc) || die "engine: runc not found after installing docker.io"
[ "$(readlink "$RUNC_WRAPPER.real" 2>/dev/null)" = "$real_runc" ] || ln -sfn "$real_runc" "$RUNC_WRAPPER.real"

# daemon.json (ours to write on this machine).
daemon_json=$(
  cat <<EOF
{
  "runtimes": { "stepline-runc": { "path": "$RUNC_WRAPPER" } },
  "default-runtime": "stepline-runc",
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "2" }
}
EOF
)
mkdir -p /etc/docker
restart=false
if [ "$(cat /etc/docker/daemon.json 2>/dev/null)" != "$daemon_json" ]; then
  info "engine: writing /etc/docker/daemon.json"
  printf '%s\n' "$daemon_json" >/etc/docker/daemon.json
  restart=true
fi

pidfile=/var/run/docker.pid
# The daemon runs when the pid in its pid file is a live dockerd. A pid file left by a dockerd that
# was killed (or by a machine that was stopped) may name a pid that another process or thread holds
# now: dockerd refuses to start while /proc/<pid> exists, so such a stale file is removed first.
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

if pid=$(running_pid) && $restart; then
  info "engine: restarting dockerd ($pid) for the new daemon.json"
  kill "$pid"
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
fi

if ! running_pid >/dev/null; then
  if [ -f "$pidfile" ]; then
    info "engine: removing the stale $pidfile (pid $(cat "$pidfile") is not a dockerd)"
    rm -f "$pidfile"
  fi
  # dockerd adopts the containerd named in this file when that pid is alive, whatever holds it now.
  containerd_pidfile=/var/run/docker/containerd/containerd.pid
  if [ -f "$containerd_pidfile" ] &&
    [ "$(cat "/proc/$(cat "$containerd_pidfile")/comm" 2>/dev/null)" != containerd ]; then
    rm -f "$containerd_pidfile"
  fi
  info "engine: starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the daemon outlives this script and its terminal.
  setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

started=$SECONDS
until docker info >/dev/null 2>&1; do
  if [ $((SECONDS - started)) -gt 60 ]; then
    tail -n 20 "$DOCKERD_LOG" >&2
    die "engine: dockerd did not answer within 60s; see $DOCKERD_LOG"
  fi
  sleep 1
done

runtime=$(docker info --format '{{.DefaultRuntime}}')
[ "$runtime" = stepline-runc ] ||
  die "engine: dockerd's default runtime is '$runtime', not stepline-runc (another dockerd with another daemon.json?); see $DOCKERD_LOG"
info "engine: docker $(docker info --format '{{.ServerVersion}} ({{.Driver}}, cgroup {{.CgroupVersion}} {{.CgroupDriver}})') ready, default runtime $runtime"
