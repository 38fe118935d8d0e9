#!/usr/bin/env bash
# Builds the local control plane, and the Jaeger the integration tests trace into, from pinned
# upstream Go modules, once per version.
#
# Usage: hack/build-binaries.sh [--cached] [component...]
#        (components: kubernetes etcd kwok helm adapter jaeger; default all)
#
# Each component lands in $STEPLINE_CACHE/bin/<component>-<version>-<go version>/ and is only
# built when that folder is missing, so a second run builds nothing. A build goes to a temporary
# folder first and is moved into place when it succeeded: an interrupted build leaves no half
# component behind. Progress (packages compiled) is printed while a cold build runs; the whole
# compiler output goes to $STEPLINE_CACHE/logs/build-<component>.log.
#
# Prints nothing on stdout but the bin folder of each component ("<component>=<dir>"), so callers
# can `eval` it. With --cached nothing is built: a component not built yet fails, naming the
# command that builds it (for test fixtures, whose timeouts a cold build does not fit in).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

require_go

logs="$STEPLINE_CACHE/logs"
mkdir -p "$logs" "$STEPLINE_CACHE/bin"

# The `go` line of our wrapper modules: the installed Go's minor release (go1.26.8 -> 1.26.0).
go_directive() {
  go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1.0/'
}

# go build with our flags; compiler progress on stderr, every line to the log.
run_go_build() { # component log-file go-args...
  local component=$1 log=$2
  shift 2
  local started=$SECONDS
  info "$component: building (cold builds take many minutes on 2 cores; log: $log)"
  CGO_ENABLED=0 GOFLAGS=-mod=mod "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null || break
    info "$component: $(grep -cv '^#' "$log" || true) packages compiled, $((SECONDS - started))s"
  done
  if ! wait "$pid"; then
    tail -n 20 "$log" >&2
    if grep -qiE 'dial tcp|proxy\.golang|no such host|i/o timeout|TLS handshake' "$log"; then
      die "$component: go could not reach the module proxy ($(go env GOPROXY)); see $log"
    fi
    die "$component: go build failed; see $log"
  fi
  info "$component: built in $((SECONDS - started))s"
}

# A wrapper module for a Go module that maps its siblings with `replace => ./…` in its own go.mod:
# Go ignores a dependency's replaces, so we restate each as a replace to the published version.
write_wrapper_module() { # dir module version sibling-version local-prefix
  local dir=$1 module=$2 version=$3 sibling_version=$4 prefix=$5 modfile
  mkdir -p "$dir"
  modfile=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$module@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])') \
    || die "$module@$version: could not download from the module proxy ($(go env GOPROXY))"
  {
    printf 'module stepline.local/build\n\ngo %s\n\nrequire %s %s\n\n' \
      "$(go_directive)" "$module" "$version"
    grep -E "=> *${prefix}" "$modfile" | awk -v v="$sibling_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$dir/go.mod"
}

ldflags_kube() {
  local v=$KUBE_VERSION major minor
  major=$(echo "${v#v}" | cut -d. -f1)
  minor=$(echo "${v#v}" | cut -d. -f2)
  local date=2000-01-01T00:00:00Z flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  done
  echo "$flags"
}

build_kubernetes() { # out-dir
  local out=$1 work="$STEPLINE_CACHE/work/kubernetes-$KUBE_VERSION" minor_patch
  minor_patch=${KUBE_VERSION#v1.}
  write_wrapper_module "$work" k8s.io/kubernetes "$KUBE_VERSION" "v0.$minor_patch" ./staging/
  (cd "$work" && GOFLAGS=-mod=mod go mod download k8s.io/kubernetes >/dev/null) \
    || die "kubernetes: could not resolve modules; see go output above"
  (cd "$work" && run_go_build kubernetes "$logs/build-kubernetes.log" \
    go build -v -trimpath -tags selinux,notest,grpcnotrace -ldflags "$(ldflags_kube)" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() { # out-dir
  local out=$1 work="$STEPLINE_CACHE/work/etcd-$ETCD_VERSION"
  write_wrapper_module "$work" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" ../
  (cd "$work" && run_go_build etcd "$logs/build-etcd.log" \
    go build -v -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() { # out-dir
  local out=$1
  GOBIN=$out run_go_build kwok "$logs/build-kwok.log" \
    go install -v -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_helm() { # out-dir
  local out=$1 major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  local pkg=helm.sh/helm/v3/pkg/chartutil
  GOBIN=$out run_go_build helm "$logs/build-helm.log" \
    go install -v -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# prometheus-adapter's go.mod has no replaces, but `go install …@version` asks the proxy for the
# module's version list (to check for deprecation), which this proxy refuses: a wrapper module
# that requires the pinned version builds it instead.
build_adapter() { # out-dir
  local out=$1 work="$STEPLINE_CACHE/work/prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION"
  mkdir -p "$work"
  printf 'module stepline.local/build\n\ngo %s\n\nrequire sigs.k8s.io/prometheus-adapter %s\n' \
    "$(go_directive)" \
    "$PROMETHEUS_ADAPTER_VERSION" >"$work/go.mod"
  (cd "$work" && run_go_build adapter "$logs/build-adapter.log" \
    go build -v -trimpath -ldflags "-s -w" -o "$out/adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter)
}

# A wrapper module for a Go module that pins dependencies with `replace old => new vX` in its own
# go.mod (Jaeger: github.com/Shopify/sarama, which cmd/jaeger still links, held at v1.33.0). Go
# ignores a dependency's replaces, so the wrapper restates every versioned one; as in
# build_adapter, building in a module of our own also spares the proxy a version-list request.
write_replacing_module() { # dir module version
  local dir=$1 module=$2 version=$3 modfile
  mkdir -p "$dir"
  modfile=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$module@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])') \
    || die "$module@$version: could not download from the module proxy ($(go env GOPROXY))"
  {
    printf 'module stepline.local/build\n\ngo %s\n\nrequire %s %s\n\n' "$(go_directive)" "$module" "$version"
    go mod edit -json "$modfile" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"].get("Version"):  # a local path (=> ./x) names nothing the proxy has
        print("replace", r["Old"]["Path"], "=>", r["New"]["Path"], r["New"]["Version"])'
  } >"$dir/go.mod"
}

# Jaeger v2 (`cmd/jaeger`): an OpenTelemetry-collector build that, given no --config, runs
# all-in-one with in-memory storage. Its web UI is built by npm upstream and is not in the Go
# module, so this binary serves a placeholder page; the query API and OTLP receivers are whole.
build_jaeger() { # out-dir
  local out=$1 work="$STEPLINE_CACHE/work/jaeger-$JAEGER_VERSION" module=github.com/jaegertracing/jaeger
  write_replacing_module "$work" "$module" "$JAEGER_VERSION"
  (cd "$work" && run_go_build jaeger "$logs/build-jaeger.log" \
    go build -v -trimpath -ldflags "-s -w -X $module/internal/version.latestVersion=$JAEGER_VERSION" \
    -o "$out/jaeger" "$module/cmd/jaeger")
}

ensure_component() { # component
  local component=$1 dir tmp
  dir=$(component_dir "$component")
  if [ ! -f "$dir/.complete" ]; then
    $cached_only && die "$component: not built yet (no $dir); run hack/build-binaries.sh $component"
    tmp="$dir.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    "build_$component" "$tmp"
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    trap - EXIT
  fi
  echo "$component=$dir"
}

cached_only=false
if [ "${1:-}" = --cached ]; then
  cached_only=true
  shift
fi
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kwok helm adapter kubernetes jaeger)
for c in "${components[@]}"; do
  case $c in
    kubernetes | etcd | kwok | helm | adapter | jaeger) ensure_component "$c" ;;
    *) die "unknown component '$c' (expected: kubernetes etcd kwok helm adapter jaeger)" ;;
  esac
done
