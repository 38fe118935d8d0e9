#!/usr/bin/env bash
# Deploys metrics-server (preloaded in our node image) into a cluster from hack/kind/cluster-up.sh
# and waits until `kubectl top nodes` answers.
#
# Usage: hack/kind/metrics-server.sh [cluster-name]   (default: the name in kind-config.yaml)
#
# The manifests are metrics-server's own release overlay, read from the sigs.k8s.io/metrics-server
# module at run time and rendered with `kubectl kustomize`, plus --kubelet-insecure-tls (kind's
# kubelets serve self-signed certificates) and imagePullPolicy Never (nothing can be pulled here;
# NODE_IMAGE=published, as in hack/kind/cluster-up.sh, leaves the pull policy alone).
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"
require_go

name=$(cluster_name "${1:-}")
eval "$("$here/../build-binaries.sh" kubernetes)"
k() { "$kubernetes/kubectl" --context "kind-$name" "$@"; }

module=$(cd "$KIND_CACHE" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))') ||
  die "metrics-server: could not download sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION"

work=/tmp/kind-work/metrics-server.$$
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/overlay"
cp -r "$module/manifests" "$work/manifests"
chmod -R u+w "$work/manifests"
pull_policy=Never
[ "${NODE_IMAGE:-local}" = local ] || pull_policy=IfNotPresent
cat >"$work/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../manifests/overlays/release
patches:
  - target: {group: apps, version: v1, kind: Deployment, name: metrics-server}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --kubelet-insecure-tls
      - op: replace
        path: /spec/template/spec/containers/0/imagePullPolicy
        value: $pull_policy
EOF
k kustomize "$work/overlay" >"$work/metrics-server.yaml" ||
  die "metrics-server: kubectl kustomize of $module/manifests failed"
grep -q "image: registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION" "$work/metrics-server.yaml" ||
  die "metrics-server: rendered manifest does not use the preloaded image (see $work/metrics-server.yaml)"

started=$SECONDS
k apply -f "$work/metrics-server.yaml" >"$KIND_LOGS/metrics-server-apply.log" 2>&1 ||
  die "metrics-server: kubectl apply failed; see $KIND_LOGS/metrics-server-apply.log"
k -n kube-system rollout status deploy/metrics-server --timeout=180s >&2 ||
  die "metrics-server: not ready (kubectl -n kube-system logs deploy/metrics-server)"
until k top nodes >/dev/null 2>&1; do
  [ $((SECONDS - started)) -lt 180 ] ||
    die "metrics-server: kubectl top nodes still failing after 180s (kubectl get apiservice v1beta1.metrics.k8s.io -o yaml)"
  sleep 3
done
info "metrics-server: serving after $((SECONDS - started))s"
k top nodes >&2
