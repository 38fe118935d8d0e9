#!/usr/bin/env bash
# Deletes a kind cluster made by hack/kind/cluster-up.sh (images and caches stay).
# Usage: hack/kind/cluster-down.sh [cluster-name]   (default: the name in kind-config.yaml)
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"

name=$(cluster_name "${1:-}")
require_docker
eval "$("$here/build-node-binaries.sh" kind)"
if "$kind/kind" get clusters 2>/dev/null | grep -qxF "$name"; then
  started=$SECONDS
  "$kind/kind" delete cluster --name "$name" >"$KIND_LOGS/kind-delete-$name.log" 2>&1 ||
    die "cluster: kind delete cluster --name $name failed; see $KIND_LOGS/kind-delete-$name.log"
  info "cluster: '$name' deleted in $((SECONDS - started))s"
else
  info "cluster: no kind cluster named '$name'"
fi
