#!/usr/bin/env bash
# Creates a kind cluster from the repository's kind-config.yaml with our offline node image.
#
# Usage: hack/kind/cluster-up.sh [cluster-name]     (default: the name in kind-config.yaml)
#   KIND_CONFIG=path   another kind config (default: kind-config.yaml at the repository root)
#   WAIT=300           seconds to wait for every node to be Ready
#   NODE_IMAGE=local   (default) our node image, built here offline, on our engine;
#   NODE_IMAGE=published  kind's published node image and whatever Docker engine runs (machines
#                      that reach registries: the GitHub workflow)
#
# The config is passed to kind unchanged: what this host needs (cgroup v1: kubelet's
# --fail-cgroupv1=false; no CAP_SYS_RESOURCE: our runc wrapper) is inside the node image and the
# engine. The kubeconfig is kind's usual one (~/.kube/config, context kind-<name>).
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"

config=${KIND_CONFIG:-$repo_root/kind-config.yaml}
[ -f "$config" ] || die "cluster: kind config $config not found"
name=$(cluster_name "${1:-}" "$config")
wait_s=${WAIT:-300}

t0=$SECONDS
case ${NODE_IMAGE:-local} in
  local)
    "$here/install-engine.sh"
    image_args=(--image "$("$here/build-node-image.sh")")
    ;;
  published)
    require_docker
    image_args=()
    ;;
  *) die "cluster: NODE_IMAGE=${NODE_IMAGE}: expected local or published" ;;
esac
eval "$("$here/build-node-binaries.sh" kind)"
kind_cli="$kind/kind"
eval "$("$here/../build-binaries.sh" kubernetes)"
kubectl="$kubernetes/kubectl"
info "cluster: inputs ready after $((SECONDS - t0))s"

# A cluster this run created and that did not come up is not left behind: its nodes' logs
# (kubelet, containerd, pods) are exported first, then it is deleted.
created=false
give_up() { # message
  if $created; then
    local exported="$KIND_LOGS/kind-export-$name"
    rm -rf "$exported"
    "$kind_cli" export logs --name "$name" "$exported" >/dev/null 2>&1 || true
    "$kind_cli" delete cluster --name "$name" >/dev/null 2>&1 || true
    die "$1; the nodes' logs (kubelet, containerd, pods) are in $exported, and the cluster was deleted"
  fi
  die "$1"
}

if "$kind_cli" get clusters 2>/dev/null | grep -qxF "$name"; then
  info "cluster: kind cluster '$name' exists (hack/kind/cluster-down.sh $name deletes it)"
else
  log="$KIND_LOGS/kind-create-$name.log"
  started=$SECONDS
  created=true
  info "cluster: kind create cluster --name $name ${image_args[*]} (log: $log)"
  if ! "$kind_cli" create cluster --name "$name" --config "$config" "${image_args[@]}" \
    --retain --wait 0s -v 3 >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    give_up "cluster: kind create cluster failed after $((SECONDS - started))s; see $log"
  fi
  info "cluster: kind create cluster returned after $((SECONDS - started))s"
fi

started=$SECONDS
ctx="kind-$name"
until "$kubectl" --context "$ctx" wait --for=condition=Ready nodes --all --timeout=10s >/dev/null 2>&1; do
  if [ $((SECONDS - started)) -gt "$wait_s" ]; then
    "$kubectl" --context "$ctx" get nodes -o wide >&2 || true
    "$kubectl" --context "$ctx" get pods -A -o wide >&2 || true
    give_up "cluster: nodes not Ready after ${wait_s}s"
  fi
  sleep 2
done
info "cluster: all nodes Ready (waited $((SECONDS - started))s after create); total $((SECONDS - t0))s"
"$kubectl" --context "$ctx" get nodes -o wide >&2
