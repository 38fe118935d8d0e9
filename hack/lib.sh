# Shared by the hack/ scripts: pinned versions, cache layout and messages. Sourced, not run.
# shellcheck shell=bash

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$hack_dir/.." && pwd)
# shellcheck source=hack/versions.env
source "$hack_dir/versions.env"

STEPLINE_CACHE=${STEPLINE_CACHE:-$HOME/.cache/stepline}
export STEPLINE_CACHE

info() { printf '[stepline] %s\n' "$*" >&2; }
die() {
  printf '[stepline] error: %s\n' "$*" >&2
  exit 1
}

# A Docker engine must answer; hack/kind/install-engine.sh installs and starts one on this host.
require_docker() {
  command -v docker >/dev/null 2>&1 || die "docker: CLI not found; run hack/kind/install-engine.sh"
  docker info >/dev/null 2>&1 ||
    die "docker: no daemon answers; run hack/kind/install-engine.sh (its log: $STEPLINE_CACHE/logs/kind/dockerd.log)"
}

require_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go toolchain not found on PATH: install Go >= 1.26 (https://go.dev/doc/install) and retry"
}

component_version() { # component
  case $1 in
    kubernetes) echo "$KUBE_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    adapter) echo "$PROMETHEUS_ADAPTER_VERSION" ;;
    jaeger) echo "$JAEGER_VERSION" ;;
  esac
}

# The cache folder of one component's binaries, keyed by its version and the Go that built it.
component_dir() { # component
  echo "$STEPLINE_CACHE/bin/$1-$(component_version "$1")-$(go env GOVERSION)"
}
