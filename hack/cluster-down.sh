#!/usr/bin/env bash
# Stops the local control plane started by cluster-up.sh (the same STEPLINE_CLUSTER and
# STEPLINE_STATE) and removes its state. Only the processes kwokctl started for that cluster are
# stopped. Harmless when nothing is running.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster-lib.sh
source "$here/cluster-lib.sh"

if ! cluster_exists; then
  info "no cluster '$cluster' under $state; nothing to stop"
  exit 0
fi
[ -x "$kwokctl" ] || die "kwokctl not found at $kwokctl; run hack/build-binaries.sh kwok"
# kwokctl kills the pid in each pid file: a dead component's pid may belong to someone else now.
forget_dead_components
"$kwokctl" --name "$cluster" delete cluster --kubeconfig "$kubeconfig" >&2
info "cluster '$cluster' stopped"
