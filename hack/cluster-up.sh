#!/usr/bin/env bash
# Starts the local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (simulated nodes), from the binaries hack/build-binaries.sh builds.
#
# Processes are supervised by kwokctl's binary runtime (a maintained tool, not our own
# supervisor); this script only writes its configuration, waits for the cluster, adds the nodes
# and prints, as its last line, `export KUBECONFIG=<path>` for `eval`.
#
# Environment:
#   STEPLINE_CLUSTER         cluster name (default: stepline)
#   STEPLINE_STATE           state folder: kubeconfig, PKI, logs (default: <repo>/.stepline)
#   STEPLINE_APISERVER_PORT  fixed kube-apiserver port on 127.0.0.1 (default: a free one)
#   STEPLINE_NODES           number of kwok nodes (default: 2)
#   STEPLINE_QPS_LIMITS      on (default) or off: client-side rate limits of the control plane's
#                            own components (off lifts them, for benchmarks)
#
# Running it again while the cluster is up changes nothing and prints the same export line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster-lib.sh
source "$here/cluster-lib.sh"

nodes=${STEPLINE_NODES:-2}
case ${STEPLINE_QPS_LIMITS:-on} in
  on) disable_qps_limits=false ;;
  off) disable_qps_limits=true ;;
  *) die "STEPLINE_QPS_LIMITS must be on or off, not '$STEPLINE_QPS_LIMITS'" ;;
esac

write_config() { # file
  local pki="$cluster_dir/pki"
  cat >"$1" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: $KUBE_VERSION
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: $KWOK_VERSION
  kubeApiserverPort: ${STEPLINE_APISERVER_PORT:-0}
  kubeApiserverBinary: $kube_bin/kube-apiserver
  kubeControllerManagerBinary: $kube_bin/kube-controller-manager
  kubeSchedulerBinary: $kube_bin/kube-scheduler
  kubectlBinary: $kube_bin/kubectl
  etcdBinary: $etcd_bin/etcd
  kwokControllerBinary: $kwok_bin/kwok
  kubeAuthorization: true
  kubeAdmission: true
  securePort: true
  # Off: the controller-manager, scheduler and kwok talk to the API server without client-side
  # rate limits (kwokctl's option; upstream defaults are 20 QPS, burst 30). Default on, like a
  # kind or kubeadm cluster; bench/steps measures both.
  disableQPSLimits: $disable_qps_limits
componentsPatches:
  # The aggregation layer, so an APIService (an external-metrics adapter) can be added later;
  # kwokctl already passes the proxy-client certificate.
  - name: kube-apiserver
    extraArgs:
      - {key: requestheader-client-ca-file, value: $pki/ca.crt}
      # kwokctl signs one certificate (CN kwok-admin) for every component, the proxy client too.
      - {key: requestheader-allowed-names, value: kwok-admin}
      - {key: requestheader-username-headers, value: X-Remote-User}
      - {key: requestheader-group-headers, value: X-Remote-Group}
      - {key: requestheader-extra-headers-prefix, value: X-Remote-Extra-}
      - {key: enable-aggregator-routing, value: "true"}
  # Every default controller (deployment, replicaset, garbage-collector, horizontal-pod-
  # autoscaling, endpoint/endpointslice, namespace, serviceaccount, …); the signing key and root
  # CA let the serviceaccount-token and root-ca-cert-publisher controllers run too.
  - name: kube-controller-manager
    extraArgs:
      - {key: controllers, value: "*"}
      - {key: service-account-private-key-file, value: $pki/admin.key}
      - {key: root-ca-file, value: $pki/ca.crt}
      - {key: horizontal-pod-autoscaler-sync-period, value: 5s}
EOF
}

# Names the components that are not running and where their logs are, then removes the cluster
# so that no process is left behind.
fail_and_clean() { # message
  local message=$1
  report_dead_components
  "$kwokctl" --name "$cluster" delete cluster >/dev/null 2>&1 || true
  die "$message (component logs: $cluster_dir/logs/)"
}

report_dead_components() {
  local c
  for c in "${components[@]}"; do
    if ! component_running "$c"; then
      info "$c is not running; its log: $cluster_dir/logs/$c.log"
      if [ -f "$cluster_dir/logs/$c.log" ]; then tail -n 3 "$cluster_dir/logs/$c.log" | sed 's/^/    /' >&2; fi
    fi
  done
}

wait_for_nodes() {
  local deadline=$((SECONDS + 120)) ready
  while [ $SECONDS -lt $deadline ]; do
    ready=$(kube get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
    [ "$ready" -ge "$nodes" ] && return 0
    sleep 1
  done
  fail_and_clean "kwok-controller: $nodes nodes did not become Ready within 120s"
}

main() {
  eval "$("$here/build-binaries.sh" kubernetes etcd kwok)"
  kube_bin=$kubernetes etcd_bin=$etcd kwok_bin=$kwok
  link_tools
  # kwokctl runs the first kubectl on PATH for its own checks: make it ours, not a stray one.
  export PATH="$state/bin:$PATH"

  if cluster_exists; then
    if api_ready && all_components_running; then
      info "cluster '$cluster' is already up"
      echo "export KUBECONFIG=$kubeconfig"
      return 0
    fi
    info "cluster '$cluster' exists but is not healthy; restarting its components"
    "$kwokctl" --name "$cluster" start cluster --wait 2m >"$state/kwokctl-start.log" 2>&1 || true
    sleep 1
    if ! all_components_running; then
      report_dead_components
      die "cluster '$cluster' could not be restarted; start afresh with: make cluster-down cluster-up"
    fi
  else
    if [ -n "${STEPLINE_APISERVER_PORT:-}" ] && port_in_use "$STEPLINE_APISERVER_PORT"; then
      die "kube-apiserver: port $STEPLINE_APISERVER_PORT on 127.0.0.1 is in use; unset STEPLINE_APISERVER_PORT for a free one"
    fi
    mkdir -p "$state"
    write_config "$state/kwokctl.yaml"
    info "starting cluster '$cluster' (kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
    "$kwokctl" --name "$cluster" -c "$state/kwokctl.yaml" create cluster \
      --kubeconfig "$kubeconfig" --wait 2m >"$state/kwokctl-create.log" 2>&1 ||
      fail_and_clean "kwokctl could not create the cluster (see $state/kwokctl-create.log)"
  fi

  local deadline=$((SECONDS + 60))
  until api_ready; do
    [ $SECONDS -lt $deadline ] || fail_and_clean "kube-apiserver: /readyz did not answer ok within 60s"
    component_running kube-apiserver || fail_and_clean "kube-apiserver exited"
    sleep 1
  done
  "$kwokctl" --name "$cluster" scale node --replicas "$nodes" >/dev/null 2>&1 ||
    fail_and_clean "kwokctl could not create $nodes nodes"
  wait_for_nodes
  all_components_running || fail_and_clean "a component exited after starting"
  info "cluster '$cluster' is ready: $nodes nodes; logs in $cluster_dir/logs/; tools in $state/bin/"
  echo "export KUBECONFIG=$kubeconfig"
}

main "$@"
