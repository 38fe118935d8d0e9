#!/usr/bin/env bash
# Proves a cluster from hack/kind/cluster-up.sh runs workloads from locally built images:
# builds a tiny python3 http.server image FROM our Debian image, `kind load docker-image`s it,
# runs it as a Deployment + Service, and checks it through `kubectl port-forward` (host -> pod),
# from a second pod through the Service's DNS name (pod -> CoreDNS -> kube-proxy -> pod), and
# prints node/pod placement and the idle footprint (docker stats).
#
# Usage: hack/kind/smoke-test.sh [cluster-name]    (default: the name in kind-config.yaml)
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"

name=$(cluster_name "${1:-}")
require_docker
eval "$("$here/build-node-binaries.sh" kind)"
eval "$("$here/../build-binaries.sh" kubernetes)"
k() { "$kubernetes/kubectl" --context "kind-$name" "$@"; }
app_image="stepline.local/smoke-http:$STEPLINE_KIND_TAG"
ns=stepline-smoke

t0=$SECONDS
if ! image_exists "$app_image"; then
  ctx=/tmp/kind-work/smoke-image.$$
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
RUN mkdir -p /srv && echo "hello from stepline smoke" > /srv/index.html
WORKDIR /srv
USER 65534:65534
EXPOSE 8080
CMD ["python3", "-m", "http.server", "8080"]
EOF
  run_logged "smoke (image)" "$KIND_LOGS/build-smoke-image.log" docker build -t "$app_image" "$ctx"
  rm -rf "$ctx"
  info "smoke: built $app_image in $((SECONDS - t0))s"
fi

started=$SECONDS
run_logged "smoke (kind load)" "$KIND_LOGS/kind-load-$name.log" "$kind/kind" load docker-image --name "$name" "$app_image"
info "smoke: kind load docker-image in $((SECONDS - started))s"

started=$SECONDS
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: $app_image
          imagePullPolicy: Never
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
k -n "$ns" rollout status deploy/web --timeout=180s >&2 ||
  { k -n "$ns" describe pods >&2; die "smoke: web pod not ready (kubectl -n $ns describe pods)"; }
info "smoke: pod Ready $((SECONDS - started))s after apply"

# host -> pod through the API server's port-forward
port=18080
k -n "$ns" port-forward svc/web "$port:80" >"$KIND_LOGS/smoke-port-forward.log" 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true' EXIT
body=""
for _ in $(seq 1 20); do
  body=$(curl -sS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null) && break
  sleep 0.5
done
kill $pf 2>/dev/null || true
[ "$body" = "hello from stepline smoke" ] ||
  die "smoke: port-forward answered '$body' (log: $KIND_LOGS/smoke-port-forward.log)"
info "smoke: port-forward OK: $body"

# pod -> Service DNS name -> pod (CoreDNS, kube-proxy, pod network). The client runs on the
# control-plane node and the server on the worker, so the request crosses nodes.
k -n "$ns" delete pod client --ignore-not-found --wait >/dev/null
k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  nodeSelector: {node-role.kubernetes.io/control-plane: ""}
  tolerations: [{operator: Exists}]
  containers:
    - name: client
      image: $app_image
      imagePullPolicy: Never
      command: [python3, -c, 'import urllib.request; print(urllib.request.urlopen("http://web.$ns.svc.cluster.local/", timeout=10).read().decode().strip())']
EOF
k -n "$ns" wait pod/client --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s >/dev/null ||
  { k -n "$ns" logs client >&2 || true; k -n "$ns" describe pod client >&2; die "smoke: in-cluster request failed (pod $ns/client)"; }
out=$(k -n "$ns" logs client)
[ "$out" = "hello from stepline smoke" ] || die "smoke: in-cluster request answered '$out'"
info "smoke: in-cluster Service DNS OK across nodes ($(k -n "$ns" get pod client -o jsonpath='{.spec.nodeName}') -> $(k -n "$ns" get pod -l app=web -o jsonpath='{.items[0].spec.nodeName}')): $out"

k get nodes -o wide >&2
k get pods -A -o wide >&2
info "smoke: all checks passed in $((SECONDS - t0))s"
sleep 20
info "smoke: idle footprint of the node containers:"
mapfile -t nodes < <(docker ps -q --filter "label=io.x-k8s.kind.cluster=$name")
docker stats --no-stream --format 'table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}' "${nodes[@]}" >&2
