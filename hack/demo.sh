#!/usr/bin/env bash
# The demo on the local control plane: brings the cluster up and shows what runs on it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster-lib.sh
source "$here/cluster-lib.sh"

eval "$("$here/cluster-up.sh")"
echo
echo "== nodes and pods (nodes are simulated by kwok; the control plane is real)"
kube get nodes,pods -A -o wide
echo
echo "Next: export KUBECONFIG=$KUBECONFIG; export PATH=$state/bin:\$PATH; kubectl get nodes"
echo "Stop the cluster with: make cluster-down"
