#!/usr/bin/env bash
# Builds every program a kind node and its preloaded images need, from Go modules (and pause from
# the Kubernetes module's C source), once per version.
#
# Usage: hack/kind/build-node-binaries.sh [component...]
#   components: kind kubernetes-node containerd runc crictl cni-plugins coredns pause metrics-server
#   (default all)
#
# Each lands in $STEPLINE_CACHE/kind/bin/<component>-<version>-<go version>/ and is only built
# when missing; logs in $STEPLINE_CACHE/logs/kind/build-<component>.log. Prints
# "<component>=<dir>" lines on stdout (for `eval`), progress on stderr.
#
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd come from
# hack/build-binaries.sh (same cache, same wrapper module); this script adds kubelet, kubeadm and
# kube-proxy from that wrapper module, so its warm GOCACHE is reused.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"
require_go

ldflags_kube() {
  local v=$KUBE_VERSION major minor flags="-s -w"
  major=$(echo "${v#v}" | cut -d. -f1)
  minor=$(echo "${v#v}" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2000-01-01T00:00:00Z"
    flags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  done
  echo "$flags"
}

build_kubernetes_node() { # out log
  local out=$1 log=$2 work="$STEPLINE_CACHE/work/kubernetes-$KUBE_VERSION"
  [ -f "$work/go.mod" ] ||
    die "kubernetes-node: wrapper module $work missing; run hack/build-binaries.sh kubernetes first"
  (cd "$work" && run_logged kubernetes-node "$log" env CGO_ENABLED=0 GOFLAGS=-mod=mod \
    go build -v -trimpath -tags selinux,notest,grpcnotrace -ldflags "$(ldflags_kube)" -o "$out/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-proxy)
}

build_containerd() { # out log
  local pkg=github.com/containerd/containerd/v2
  GOBIN=$1 run_logged containerd "$2" env CGO_ENABLED=0 go install -v -trimpath \
    -tags "no_aufs no_zfs no_btrfs no_devmapper" \
    -ldflags "-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=github.com/containerd/containerd/v2" \
    "$pkg/cmd/containerd@$CONTAINERD_VERSION" "$pkg/cmd/ctr@$CONTAINERD_VERSION" \
    "$pkg/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

build_runc() { # out log: cgo (nsenter, libseccomp), linked statically
  GOBIN=$1 run_logged runc "$2" env CGO_ENABLED=1 go install -v -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -extldflags -static" \
    "github.com/opencontainers/runc@$RUNC_VERSION"
}

build_crictl() {
  GOBIN=$1 run_logged crictl "$2" env CGO_ENABLED=0 go install -v -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_cni_plugins() {
  local m=github.com/containernetworking/plugins
  GOBIN=$1 run_logged cni-plugins "$2" env CGO_ENABLED=0 go install -v -trimpath -ldflags "-s -w" \
    "$m/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" "$m/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
    "$m/plugins/main/ptp@$CNI_PLUGINS_VERSION" "$m/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
    "$m/plugins/meta/portmap@$CNI_PLUGINS_VERSION"
}

build_coredns() {
  GOBIN=$1 run_logged coredns "$2" env CGO_ENABLED=0 go install -v -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_pause() { # Kubernetes' pause.c from the k8s.io/kubernetes module, static
  local src
  src=$(cd "$KIND_CACHE" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/build/pause/linux/pause.c
  [ -f "$src" ] || die "pause: $src not found in the k8s.io/kubernetes module"
  run_logged pause "$2" gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-stepline" -o "$1/pause" "$src"
}

build_metrics_server() {
  GOBIN=$1 run_logged metrics-server "$2" env CGO_ENABLED=0 go install -v -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
}

build_kind() {
  GOBIN=$1 run_logged kind "$2" env CGO_ENABLED=0 go install -v -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kind@$KIND_VERSION"
}

version_of() {
  case $1 in
    kind) echo "$KIND_VERSION" ;;
    kubernetes-node) echo "$KUBE_VERSION" ;;
    containerd) echo "$CONTAINERD_VERSION" ;;
    runc) echo "$RUNC_VERSION" ;;
    crictl) echo "$CRICTL_VERSION" ;;
    cni-plugins) echo "$CNI_PLUGINS_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    pause) echo "$PAUSE_VERSION" ;;
    metrics-server) echo "$METRICS_SERVER_VERSION" ;;
  esac
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kind pause runc crictl cni-plugins containerd coredns kubernetes-node metrics-server)
for c in "${components[@]}"; do
  v=$(version_of "$c")
  [ -n "$v" ] || die "unknown component '$c' (expected: kind kubernetes-node containerd runc crictl cni-plugins coredns pause metrics-server)"
  echo "${c//-/_}=$(ensure_built "$c" "$v" "build_${c//-/_}")"
done
