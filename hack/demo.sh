#!/usr/bin/env bash
# The demo on the local control plane: a trade (validate the user → process the order).
#
#   hack/demo.sh        bring everything up, run the workflow, print what happened
#   hack/demo.sh stop   stop the operator and the step services the demo started
#
# The control plane is real (etcd, kube-apiserver, controller-manager, scheduler); kwok simulates
# the nodes, so the step pods it reports Running execute nothing. The demo therefore runs the same
# step programs as local processes and maps the ServiceSteps to them with
# STEPLINE_ENDPOINT_OVERRIDES. On a real cluster (kind) the operator calls the pods instead.
# Invoke is called as users call it: with a ServiceAccount's token, allowed to invoke the workflow
# by a RoleBinding (what the chart's ClusterRole <release>-invoker grants).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster-lib.sh
source "$here/cluster-lib.sh"

demo=$state/demo
python=$repo_root/.venv/bin/python
namespace=finance
http_port=${STEPLINE_DEMO_PORT:-18080}
validation_port=$((http_port + 1))
order_port=$((http_port + 2))
metrics_port=$((http_port + 3))

stop_demo() {
  local pidfile pid
  for pidfile in "$demo"/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

start() { # name port-to-wait-for command...
  local name=$1 port=$2
  shift 2
  "$@" >"$demo/$name.log" 2>&1 &
  echo $! >"$demo/$name.pid"
  local deadline=$((SECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$(cat "$demo/$name.pid")" 2>/dev/null || die "$name exited; its log: $demo/$name.log"
    [ $SECONDS -lt $deadline ] || die "$name did not listen on $port within 30s; its log: $demo/$name.log"
    sleep 0.2
  done
}

invoke() { # json-input [token]
  local auth=()
  [ -z "${2:-}" ] || auth=(-H "Authorization: Bearer $2")
  curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' "${auth[@]}" --data "$1" \
    "http://127.0.0.1:$http_port/v1/namespaces/$namespace/workflows/trade:invoke"
}

# A ServiceAccount `caller` that may invoke the namespace's workflows: a Role with the verb
# `invoke` on workflows.stepline.io, bound to it. Prints a token of it (TokenRequest API).
caller_token() {
  kube apply -n "$namespace" -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: caller}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: invoker}
rules:
- apiGroups: [stepline.io]
  resources: [workflows]
  verbs: [invoke]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: caller-invokes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: invoker}
subjects: [{kind: ServiceAccount, name: caller, namespace: $namespace}]
YAML
  kube create token caller -n "$namespace" --duration=1h
}

main() {
  if [ "${1:-}" = stop ]; then
    stop_demo
    info "demo processes stopped (the cluster keeps running: make cluster-down)"
    return
  fi
  eval "$("$here/cluster-up.sh")"
  mkdir -p "$demo"
  stop_demo
  # A demo that fails half-way leaves nothing running behind it.
  trap 'stop_demo' ERR
  for port in "$http_port" "$validation_port" "$order_port" "$metrics_port"; do
    port_in_use "$port" && die "port $port on 127.0.0.1 is in use; set STEPLINE_DEMO_PORT to another base port"
  done

  echo "== Stepline's CRDs"
  kube apply --server-side --force-conflicts -f "$repo_root/crds/" >/dev/null
  kube wait --for=condition=Established --timeout=60s crd --all >/dev/null
  kube create namespace "$namespace" --dry-run=client -o yaml | kube apply -f - >/dev/null

  echo "== step services as local processes (kwok's pods run nothing; see the note above)"
  start user-validation "$validation_port" env PYTHONPATH="$repo_root/examples" \
    "$python" -m finance.user_validation --host 127.0.0.1 --port "$validation_port"
  start order-processing "$order_port" env PYTHONPATH="$repo_root/examples" \
    "$python" -m finance.order_processing --host 127.0.0.1 --port "$order_port" --exchange XNYS
  echo "   user-validation  → http://127.0.0.1:$validation_port"
  echo "   order-processing → http://127.0.0.1:$order_port"

  echo "== the operator (log: $demo/operator.log)"
  overrides="{\"user-validation\": \"http://127.0.0.1:$validation_port\", \"order-processing\": \"http://127.0.0.1:$order_port\"}"
  start operator "$http_port" env KUBECONFIG="$KUBECONFIG" STEPLINE_NAMESPACES="$namespace" \
    STEPLINE_HTTP_HOST=127.0.0.1 STEPLINE_HTTP_PORT="$http_port" STEPLINE_LIVENESS_PORT=0 \
    STEPLINE_METRICS_PORT="$metrics_port" \
    STEPLINE_ENDPOINT_OVERRIDES="$overrides" "$python" -m stepline run

  echo "== the finance ServiceSteps and Workflow"
  kube apply -n "$namespace" -f "$repo_root/examples/finance/servicesteps.yaml" -f "$repo_root/examples/finance/workflow.yaml"
  kube wait -n "$namespace" --for=condition=Ready --timeout=120s servicestep --all >/dev/null
  kube wait -n "$namespace" --for=condition=Ready --timeout=60s workflow/trade >/dev/null
  kube get -n "$namespace" servicesteps,workflows,deployments,horizontalpodautoscalers,pods

  echo
  echo "== a WorkflowRun (durable: checkpointed in its status after every step)"
  kube delete -n "$namespace" workflowrun trade-ada-1 --ignore-not-found >/dev/null
  kube apply -n "$namespace" -f "$repo_root/examples/finance/workflowrun.yaml" >/dev/null
  kube wait -n "$namespace" --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s workflowrun/trade-ada-1 >/dev/null
  kube get -n "$namespace" workflowrun trade-ada-1
  kube get -n "$namespace" workflowrun trade-ada-1 -o json | "$python" "$here/demo_report.py" run

  echo
  echo "== synchronous invoke (no object written per call): POST .../workflows/trade:invoke"
  echo "   with the token of ServiceAccount $namespace/caller, which a RoleBinding lets invoke"
  token=$(caller_token)
  for input in \
    '{"user": {"id": "u-1", "name": "Grace", "country": "US", "age": 45, "kycVerified": true}, "order": {"symbol": "ACME", "side": "buy", "quantity": 5, "limitPrice": 100}}' \
    '{"user": {"id": "u-2", "name": "Ivy", "country": "GB", "age": 17, "kycVerified": false}, "order": {"symbol": "ACME", "side": "sell", "quantity": 1, "limitPrice": 99}}' \
    '{"user": "not an object"}'; do
    invoke "$input" "$token" | "$python" "$here/demo_report.py" invoke
  done
  echo "   and without a token:"
  invoke '{}' | "$python" "$here/demo_report.py" invoke

  echo
  echo "== metrics (a port of their own, no token): http://127.0.0.1:$metrics_port/metrics"
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    grep -E '^stepline_(runs_finished_total|step_calls_total|runs_in_flight)\{' | sed 's/^/   /'
  echo
  echo "Look next:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$state/bin:\$PATH"
  echo "  kubectl get stepline -n $namespace; kubectl describe workflowrun -n $namespace trade-ada-1"
  echo "  curl -s -XPOST -H \"Authorization: Bearer \$(kubectl create token caller -n $namespace)\" \\"
  echo "    http://127.0.0.1:$http_port/v1/namespaces/$namespace/workflows/trade:invoke -d @input.json"
  echo "Stop: hack/demo.sh stop; make cluster-down"
}

main "$@"
