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
# Running it again while the cluster is up changes nothing and prints the same export line. When
# some of its components died (the API server was killed, say), it starts them again and returns
# once the API is ready and every component has stayed up for a few seconds.
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

# The API server's audit policy: the metadata of every write (who, which user agent, what object),
# nothing of reads, and nothing of the control plane's own Leases renewed every 2 seconds.
write_audit_policy() { # file
  cat >"$1" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  namespaces: [kube-system, kube-node-lease]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
EOF
}

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
  # Who wrote what (metadata only, writes only): the audit log, $cluster_dir/logs/audit.log,
  # is how tests tell which operator replica wrote (tests/integration/test_leadership.py).
  kubeAuditPolicy: $state/audit-policy.yaml
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

# How a restart of an existing cluster ends. The controller-manager and the scheduler exit when
# they could not renew their leader lease for 10 s (the default --leader-elect-renew-deadline): one
# still running when the API server died may come back to a lost lease and exit a few seconds after
# the API is ready again. So a restart counts as done only when every component has then stayed up
# for settle_seconds (longer than that deadline); a component that exits meanwhile is started again,
# in at most restart_rounds rounds.
settle_seconds=12
restart_rounds=3

# Pod addresses that are this machine's own. kwok gives each pod an address from its node's
# podCIDR (kwokctl's default, 10.0.<n>.0/24, leads nowhere); ours come from 198.18.0.0/16 (RFC
# 2544's benchmarking range, unused on real networks), which a `local` route on lo makes local
# to this machine: a step process a test starts on a pod's address and port *is* that replica,
# reached by the operator through the EndpointSlices like a real pod
# (tests/integration/test_balancing.py), and a call to a pod nobody serves is refused at once.
# (Loopback addresses cannot be used: the API server refuses them in EndpointSlices.)
POD_ADDRESSES=198.18.0.0/16
POD_CIDR_BASE=198.18.0.0/24 # node n gets 198.18.n.0/24

local_pod_addresses() {
  ip route show table local 2>/dev/null | grep -q "^local $POD_ADDRESSES dev lo" && return 0
  if [ "$(id -u)" = 0 ] && ip route add local "$POD_ADDRESSES" dev lo 2>/dev/null; then
    info "pod addresses $POD_ADDRESSES are now local to this machine (ip route add local $POD_ADDRESSES dev lo)"
  else
    info "warning: could not route $POD_ADDRESSES to lo (needs root: ip route add local $POD_ADDRESSES dev lo);" \
      "calls to pods will not connect, and tests/integration/test_balancing.py fails"
  fi
}

# Set when this run creates the cluster: only then does a failure remove it.
created=false

# Says what failed and names the components that are not running, with their log tails. A cluster
# this run created is removed so that no process is left behind; one that existed before is left as
# it is (its etcd holds the user's objects), with the way to start afresh.
fail() { # message
  local message=$1
  report_dead_components
  if [ "$created" = false ]; then
    die "$message; start afresh with: make cluster-down cluster-up (component logs: $cluster_dir/logs/)"
  fi
  forget_dead_components
  "$kwokctl" --name "$cluster" delete cluster >/dev/null 2>&1 || true
  die "$message (component logs: $cluster_dir/logs/)"
}

report_dead_components() {
  local c
  for c in $(dead_components); do
    info "$c is not running; its log: $cluster_dir/logs/$c.log"
    if [ -f "$cluster_dir/logs/$c.log" ]; then tail -n 3 "$cluster_dir/logs/$c.log" | sed 's/^/    /' >&2; fi
  done
}

# Waits until /readyz answers ok; false as soon as the API server exits, a failure after 60s.
wait_for_api() {
  local deadline=$((SECONDS + 60))
  until api_ready; do
    component_running kube-apiserver || return 1
    [ $SECONDS -lt $deadline ] || fail "kube-apiserver: /readyz did not answer ok within 60s"
    sleep 1
  done
}

# True when every component stays running for the given number of seconds.
components_stay_up() { # seconds
  local until=$((SECONDS + $1))
  while [ $SECONDS -lt $until ]; do
    all_components_running || return 1
    sleep 1
  done
  all_components_running
}

# Starts the components of an existing cluster that are not running, until all of them have stayed
# up for settle_seconds after the API answered. kwokctl starts them in order (etcd, the API server,
# then the rest) without waiting for the API in between; the controller-manager and the scheduler
# retry until it answers, and a component that gives up is started again in the next round. Its
# own --wait is not used: it judges components by kill -0 too, and would wait its whole timeout
# for one that exited.
restart_components() {
  local round
  : >"$state/kwokctl-start.log"
  for ((round = 1; round <= restart_rounds; round++)); do
    forget_dead_components
    "$kwokctl" --name "$cluster" start cluster --timeout 60s >>"$state/kwokctl-start.log" 2>&1 ||
      fail "kwokctl could not start the cluster's components (see $state/kwokctl-start.log)"
    if wait_for_api && components_stay_up "$settle_seconds"; then return 0; fi
    info "$(dead_components) exited within ${settle_seconds}s of starting (round $round of $restart_rounds)"
  done
  fail "cluster '$cluster' could not be restarted: $(dead_components) kept exiting"
}

wait_for_nodes() {
  local deadline=$((SECONDS + 120)) ready
  while [ $SECONDS -lt $deadline ]; do
    ready=$(kube get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
    [ "$ready" -ge "$nodes" ] && return 0
    sleep 1
  done
  fail "kwok-controller: $nodes nodes did not become Ready within 120s"
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
    info "cluster '$cluster' exists but is not healthy (not running: $(dead_components)); restarting"
    restart_components
  else
    if [ -n "${STEPLINE_APISERVER_PORT:-}" ] && port_in_use "$STEPLINE_APISERVER_PORT"; then
      die "kube-apiserver: port $STEPLINE_APISERVER_PORT on 127.0.0.1 is in use; unset STEPLINE_APISERVER_PORT for a free one"
    fi
    mkdir -p "$state"
    write_audit_policy "$state/audit-policy.yaml"
    write_config "$state/kwokctl.yaml"
    info "starting cluster '$cluster' (kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
    created=true
    "$kwokctl" --name "$cluster" -c "$state/kwokctl.yaml" create cluster \
      --kubeconfig "$kubeconfig" --wait 2m >"$state/kwokctl-create.log" 2>&1 ||
      fail "kwokctl could not create the cluster (see $state/kwokctl-create.log)"
    wait_for_api || fail "kube-apiserver exited"
  fi

  local_pod_addresses
  "$kwokctl" --name "$cluster" scale node --replicas "$nodes" --param ".podCIDR=\"$POD_CIDR_BASE\"" >/dev/null 2>&1 ||
    fail "kwokctl could not create $nodes nodes"
  wait_for_nodes
  all_components_running || fail "a component exited after starting"
  info "cluster '$cluster' is ready: $nodes nodes; logs in $cluster_dir/logs/; tools in $state/bin/"
  echo "export KUBECONFIG=$kubeconfig"
}

main "$@"
