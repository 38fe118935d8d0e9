#!/usr/bin/env bash
# The demo on the local control plane.
#
#   hack/demo.sh        the finance example: a trade (validate the user → process the order →
#                       settle it), one the account cannot pay (its order cancelled, the
#                       compensation), and synchronous invokes; prints what happened, ending
#                       with one run's step timeline (`stepline describe`) and its trace
#   hack/demo.sh city   the smart-city example: three readings side by side, joined into one
#                       report (make demo-city)
#   hack/demo.sh stop   stop the operator and the step services the demo started
#
# The control plane is real (etcd, kube-apiserver, controller-manager, scheduler); kwok simulates
# the nodes, so the step pods it reports Running execute nothing. The demo therefore runs the same
# step programs as local processes and maps the ServiceSteps to them with
# STEPLINE_ENDPOINT_OVERRIDES. On a real cluster (kind) the operator calls the pods instead.
# Invoke is called as users call it: with a ServiceAccount's token, allowed to invoke the workflow
# by a RoleBinding (what the chart's ClusterRole <release>-invoker grants). Where Jaeger is built
# (hack/build-binaries.sh jaeger, which `make install` runs), it runs too, in memory, and the
# operator and the step services send it their spans. One demo runs at a time: each stops the
# other's processes first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster-lib.sh
source "$here/cluster-lib.sh"

demo=$state/demo
python=$repo_root/.venv/bin/python
namespace=finance
http_port=${STEPLINE_DEMO_PORT:-18080}
metrics_port=$((http_port + 3))
# The step services' ports: base + 1, 2, 4, 5 (+3 is the operator's metrics port).
service_ports=($((http_port + 1)) $((http_port + 2)) $((http_port + 4)) $((http_port + 5)))
# Jaeger's: OTLP/HTTP, OTLP/gRPC, query HTTP and gRPC, health (base + 6 to 10).
jaeger_ports=($((http_port + 6)) $((http_port + 7)) $((http_port + 8)) $((http_port + 9)) $((http_port + 10)))
tracing_endpoint=""

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

# A step service of examples/ as a local process on 127.0.0.1:port.
start_service() { # name port module [args...]
  local name=$1 port=$2 module=$3 tracing=()
  shift 3
  [ -z "$tracing_endpoint" ] ||
    tracing=(OTEL_EXPORTER_OTLP_ENDPOINT="$tracing_endpoint" OTEL_SERVICE_NAME="$name")
  start "$name" "$port" env PYTHONPATH="$repo_root/examples" "${tracing[@]}" \
    "$python" -m "$module" --host 127.0.0.1 --port "$port" "$@"
  printf '   %-19s → http://127.0.0.1:%s\n' "$name" "$port"
}

# The operator watching $namespace, each ServiceStep named in `steps` called at its service's port
# (the same order as service_ports).
start_operator() { # step...
  local overrides="" i=0 step
  for step in "$@"; do
    overrides+="${overrides:+, }\"$step\": \"http://127.0.0.1:${service_ports[$i]}\""
    i=$((i + 1))
  done
  echo "== the operator (log: $demo/operator.log)"
  start operator "$http_port" env KUBECONFIG="$KUBECONFIG" STEPLINE_NAMESPACES="$namespace" \
    STEPLINE_HTTP_HOST=127.0.0.1 STEPLINE_HTTP_PORT="$http_port" STEPLINE_LIVENESS_PORT=0 STEPLINE_UI=true \
    STEPLINE_METRICS_PORT="$metrics_port" STEPLINE_TRACING_ENDPOINT="$tracing_endpoint" \
    STEPLINE_ENDPOINT_OVERRIDES="{$overrides}" "$python" -m stepline run
}

# Jaeger in memory on loopback, if it was built: OTLP in, its query API out (tests/integration/
# jaeger.py runs it the same way). Sets tracing_endpoint; without Jaeger, nothing is traced.
start_jaeger() {
  local built
  if ! built=$("$here/build-binaries.sh" --cached jaeger 2>/dev/null); then
    echo "== no Jaeger built (hack/build-binaries.sh jaeger): the demo runs without traces"
    return 0
  fi
  cat >"$demo/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, traces: {level: none}}
extensions:
  jaeger_storage: {backends: {memstore: {memory: {max_traces: 100000}}}}
  jaeger_query:
    storage: {traces: memstore}
    enable_tracing: false
    http: {endpoint: "127.0.0.1:${jaeger_ports[2]}"}
    grpc: {endpoint: "127.0.0.1:${jaeger_ports[3]}"}
  healthcheckv2: {use_v2: true, http: {endpoint: "127.0.0.1:${jaeger_ports[4]}"}}
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:${jaeger_ports[0]}"}
      grpc: {endpoint: "127.0.0.1:${jaeger_ports[1]}"}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
YAML
  echo "== Jaeger, in memory (log: $demo/jaeger.log): spans from the operator and the services"
  start jaeger "${jaeger_ports[2]}" "${built#jaeger=}/jaeger" --config="$demo/jaeger.yaml"
  tracing_endpoint="http://127.0.0.1:${jaeger_ports[0]}"
}

# One run's step timeline, and where Jaeger holds its trace.
show_run() { # run
  echo
  echo "== one run's step timeline: stepline describe $1 -n $namespace"
  "$python" -m stepline describe "$1" -n "$namespace" --kubeconfig "$KUBECONFIG" | sed 's/^/   /'
  [ -n "$tracing_endpoint" ] || return 0
  local uid trace
  uid=$(kube get -n "$namespace" workflowrun "$1" -o jsonpath='{.metadata.uid}')
  trace=$("$python" -c 'import sys; from stepline.engine.tracing import derive_trace_id; print(derive_trace_id(sys.argv[1]))' "$uid")
  echo "   its trace in Jaeger: http://127.0.0.1:${jaeger_ports[2]}/api/traces/$trace"
}

# The cluster up, the CRDs Established, $namespace made, nothing of an earlier demo running.
prepare() {
  eval "$("$here/cluster-up.sh")"
  mkdir -p "$demo"
  stop_demo
  # A demo that fails half-way (a command fails, or `die`) leaves nothing running behind it.
  trap 'status=$?; [ "$status" -eq 0 ] || stop_demo' EXIT
  for port in "$http_port" "$metrics_port" "${service_ports[@]}" "${jaeger_ports[@]}"; do
    port_in_use "$port" && die "port $port on 127.0.0.1 is in use; set STEPLINE_DEMO_PORT to another base port"
  done

  echo "== Stepline's CRDs"
  kube apply --server-side --force-conflicts -f "$repo_root/crds/" >/dev/null
  kube wait --for=condition=Established --timeout=60s crd --all >/dev/null
  kube create namespace "$namespace" --dry-run=client -o yaml | kube apply -f - >/dev/null
}

# The example's ServiceSteps and Workflow applied and Ready.
apply_example() { # example workflow
  echo "== the $1 ServiceSteps and Workflow"
  kube apply -n "$namespace" -f "$repo_root/examples/$1/servicesteps.yaml" -f "$repo_root/examples/$1/workflow.yaml"
  kube wait -n "$namespace" --for=condition=Ready --timeout=120s servicestep --all >/dev/null
  kube wait -n "$namespace" --for=condition=Ready --timeout=60s "workflow/$2" >/dev/null
  kube get -n "$namespace" servicesteps,workflows,deployments,horizontalpodautoscalers,pods
}

# Creates the WorkflowRun of an example's file (again, if it exists), waits for the phase and
# prints it with each step's result.
run_example() { # file run-name phase
  kube delete -n "$namespace" workflowrun "$2" --ignore-not-found >/dev/null
  kube apply -n "$namespace" -f "$1" >/dev/null
  kube wait -n "$namespace" --for=jsonpath='{.status.phase}'="$3" --timeout=60s "workflowrun/$2" >/dev/null
  kube get -n "$namespace" workflowrun "$2"
  kube get -n "$namespace" workflowrun "$2" -o json | "$python" "$here/demo_report.py" run
}

show_metrics() {
  echo
  echo "== metrics (a port of their own, no token): http://127.0.0.1:$metrics_port/metrics"
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    grep -E '^stepline_(runs_finished_total|step_calls_total|runs_in_flight|compensations_total)\{' | sed 's/^/   /'
}

invoke() { # json-input [token]
  local auth=()
  [ -z "${2:-}" ] || auth=(-H "Authorization: Bearer $2")
  curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' "${auth[@]}" --data "$1" \
    "http://127.0.0.1:$http_port/v1/namespaces/$namespace/workflows/trade:invoke"
}

# A ServiceAccount bound to a Role of the given rules (YAML list items) in the namespace;
# prints a token of it (TokenRequest API).
account_token() { # account role duration rules
  kube apply -n "$namespace" -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: $1}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $2}
rules:
$4
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $1-$2}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $2}
subjects: [{kind: ServiceAccount, name: $1, namespace: $namespace}]
YAML
  kube create token "$1" -n "$namespace" --duration="$3"
}

# `caller` may invoke the namespace's workflows: the verb `invoke` on workflows.stepline.io.
caller_token() {
  account_token caller invoker 1h '- {apiGroups: [stepline.io], resources: [workflows], verbs: [invoke]}'
}

# `viewer`, for the web view: it may read the namespace's workflows and runs, and cancel,
# suspend, resume and rerun runs.
viewer_token() {
  account_token viewer web-viewer 8h '- {apiGroups: [stepline.io], resources: [workflows, servicesteps], verbs: [get, list, watch]}
- {apiGroups: [stepline.io], resources: [workflowruns], verbs: [get, list, watch, create, patch]}'
}

show_ui() {
  echo
  echo "== the web view: http://127.0.0.1:$http_port/ui/namespaces/$namespace/workflows"
  echo "   sign in with the token of ServiceAccount $namespace/viewer (reads runs, may cancel,"
  echo "   suspend, resume and rerun them), also in $demo/viewer.token:"
  viewer_token >"$demo/viewer.token"
  echo "   (a new one: kubectl create token viewer -n $namespace)"
}

finance_demo() {
  namespace=finance
  prepare
  start_jaeger
  echo "== step services as local processes (kwok's pods run nothing; see the note above)"
  start_service user-validation "${service_ports[0]}" finance.user_validation
  start_service order-processing "${service_ports[1]}" finance.order_processing --exchange XNYS
  start_service trade-settlement "${service_ports[2]}" finance.trade_settlement
  start_service order-cancellation "${service_ports[3]}" finance.order_cancellation
  start_operator user-validation order-processing trade-settlement order-cancellation
  apply_example finance trade

  echo
  echo "== a WorkflowRun (durable: checkpointed in its status after every step)"
  run_example "$repo_root/examples/finance/workflowrun.yaml" trade-ada-1 Succeeded

  echo
  echo "== a trade the account cannot pay: the settlement refuses it (409, never retried), the"
  echo "   run fails, and the order step's compensation cancels the order it placed"
  run_example "$repo_root/examples/finance/workflowrun-unsettled.yaml" trade-charles-1 Failed

  echo
  echo "== synchronous invoke (no object written per call): POST .../workflows/trade:invoke"
  echo "   with the token of ServiceAccount $namespace/caller, which a RoleBinding lets invoke"
  token=$(caller_token)
  for input in \
    '{"user": {"id": "u-1", "name": "Grace", "country": "US", "age": 45, "kycVerified": true}, "order": {"symbol": "ACME", "side": "buy", "quantity": 5, "limitPrice": 100}, "account": {"id": "acc-1", "cash": 10000}}' \
    '{"user": {"id": "u-2", "name": "Ivy", "country": "GB", "age": 17, "kycVerified": false}, "order": {"symbol": "ACME", "side": "sell", "quantity": 1, "limitPrice": 99}, "account": {"id": "acc-2", "cash": 0}}' \
    '{"user": "not an object"}'; do
    invoke "$input" "$token" | "$python" "$here/demo_report.py" invoke
  done
  echo "   and without a token:"
  invoke '{}' | "$python" "$here/demo_report.py" invoke

  show_metrics
  show_run trade-charles-1
  show_ui
  echo
  echo "Look next:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$state/bin:\$PATH"
  echo "  kubectl get stepline -n $namespace; .venv/bin/stepline runs -n $namespace; .venv/bin/stepline graph trade -n $namespace"
  echo "  curl -s -XPOST -H \"Authorization: Bearer \$(kubectl create token caller -n $namespace)\" \\"
  echo "    http://127.0.0.1:$http_port/v1/namespaces/$namespace/workflows/trade:invoke -d @input.json"
  echo "Stop: hack/demo.sh stop; make cluster-down"
}

city_demo() {
  namespace=city
  prepare
  start_jaeger
  echo "== step services as local processes (kwok's pods run nothing; see the note above); each"
  echo "   reading waits 300 ms per call (--wait-ms-per-call), as one asking its sensors would"
  start_service traffic-flow "${service_ports[0]}" city.traffic_flow --wait-ms-per-call 300
  start_service air-quality "${service_ports[1]}" city.air_quality --wait-ms-per-call 300
  start_service service-complaints "${service_ports[2]}" city.service_complaints --wait-ms-per-call 300
  start_service city-report "${service_ports[3]}" city.city_report
  start_operator traffic-flow air-quality service-complaints city-report
  apply_example city city-report

  echo
  echo "== one morning in Riverton: traffic, air and complaints side by side (parallelism: 3),"
  echo "   then the report joining them; a reading starts +0.0 s after the run, the report after"
  echo "   the slowest reading, and the run takes about one reading's time, not three"
  run_example "$repo_root/examples/city/workflowrun.yaml" riverton-morning Succeeded
  kube get -n "$namespace" workflowrun riverton-morning -o json | "$python" "$here/demo_report.py" city

  show_metrics
  show_run riverton-morning
  show_ui
  echo
  echo "Look next:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$state/bin:\$PATH"
  echo "  kubectl get wfrun -n $namespace; .venv/bin/stepline graph city-report -n $namespace --format mermaid"
  echo "Stop: hack/demo.sh stop; make cluster-down"
}

main() {
  case ${1:-finance} in
    stop)
      stop_demo
      info "demo processes stopped (the cluster keeps running: make cluster-down)"
      ;;
    finance) finance_demo ;;
    city) city_demo ;;
    *) die "usage: hack/demo.sh [finance|city|stop]" ;;
  esac
}

main "$@"
