# Shared by the hack/kind/ scripts: pinned versions, cache layout, docker helpers. Sourced, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the names below are used by the scripts that source this file

kind_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$kind_dir/../lib.sh"
# shellcheck source=hack/kind/versions.env
source "$kind_dir/versions.env"

KIND_CACHE="$STEPLINE_CACHE/kind"
KIND_LOGS="$STEPLINE_CACHE/logs/kind"
mkdir -p "$KIND_CACHE" "$KIND_LOGS"

# Where the engine pieces live on the host (outside git, outside the cache: dockerd needs them
# even if the cache is wiped).
RUNC_WRAPPER=/usr/local/lib/stepline/runc-capfix
DOCKERD_LOG="$KIND_LOGS/dockerd.log"

# Image names (all local; nothing is ever pulled).
DEBIAN_IMAGE="stepline.local/debian:$DEBIAN_SUITE"
KIND_BASE_IMAGE="stepline.local/kind-base:$KIND_VERSION-$STEPLINE_KIND_TAG"
KIND_NODE_IMAGE="stepline.local/kind-node:$KUBE_VERSION-$STEPLINE_KIND_TAG"
NET_IMAGE="stepline.local/stepline-net:$STEPLINE_KIND_TAG"

# The kind module (its images/base/files/ are used at build time, never copied into git).
kind_module_dir() {
  (cd "$KIND_CACHE" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))') ||
    die "kind: could not download sigs.k8s.io/kind@$KIND_VERSION from the module proxy ($(go env GOPROXY))"
}

go_tag() { go env GOVERSION; }

# Cached folder of one Go-built component: $KIND_CACHE/bin/<name>-<version>-<go version>.
kind_bin_dir() { # name version
  echo "$KIND_CACHE/bin/$1-$2-$(go_tag)"
}

# Runs a command with all output to a log; on failure prints the tail and dies naming both.
run_logged() { # component log command...
  local component=$1 log=$2 started=$SECONDS
  shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "$component: failed after $((SECONDS - started))s; see $log"
  fi
}

# Builds into a temporary folder and moves it into place when the build function succeeded, so
# an interrupted build leaves nothing half-done behind. Prints the folder.
ensure_built() { # name version build-function
  local name=$1 version=$2 fn=$3 dir tmp started=$SECONDS
  dir=$(kind_bin_dir "$name" "$version")
  if [ ! -f "$dir/.complete" ]; then
    tmp="$dir.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    info "$name $version: building (log: $KIND_LOGS/build-$name.log)"
    "$fn" "$tmp" "$KIND_LOGS/build-$name.log"
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    info "$name $version: built in $((SECONDS - started))s"
  fi
  echo "$dir"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Content hash of a build context (every file's path and bytes), stored as the image label
# stepline.inputs: an image is rebuilt when its inputs change, not only when it is missing.
context_hash() { # dir
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}
# Removes an image we replaced, once it has no tag left (ignored while a container uses it).
retire_image() { # old image id
  [ -n "$1" ] || return 0
  [ "$(docker image inspect -f '{{len .RepoTags}}' "$1" 2>/dev/null)" = 0 ] || return 0
  docker rmi "$1" >/dev/null 2>&1 || true
}
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_inputs() { # image -> its stepline.inputs label, empty when missing
  docker image inspect -f '{{index .Config.Labels "stepline.inputs"}}' "$1" 2>/dev/null || true
}

# The cluster's name: the first argument of a script, else the name in the kind config.
cluster_name() { # [name] [config]
  if [ -n "${1:-}" ]; then echo "$1"; return; fi
  python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1])).get("name") or "kind")' \
    "${2:-$repo_root/kind-config.yaml}"
}
