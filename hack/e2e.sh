#!/usr/bin/env bash
# The end-to-end suite on real pods (tests/e2e/): a kind cluster, Stepline's images loaded into
# it, metrics-server, then pytest. `make test` runs it after the unit and integration suites; the
# GitHub workflow (.github/workflows/e2e.yaml) runs this same script.
#
# Usage: hack/e2e.sh [pytest args...]
#   E2E_MODE=local      (default) everything built here, offline: the Docker engine
#                       (hack/kind/install-engine.sh), the images on a Debian base made here
#                       (hack/build-images.sh), kind's node image built here (hack/kind/)
#   E2E_MODE=published  for machines that reach registries: the Dockerfiles' public Python base,
#                       kind's published node image, metrics-server's published image
#   E2E_CLUSTER=name    the kind cluster (default stepline-e2e, so a `make kind-up` cluster is
#                       never touched); created when missing
#   E2E_KEEP_CLUSTER=1  keep a cluster this script created (default: delete it at the end,
#                       whether the suite passed or not; one that already existed is always kept)
#
# Every piece is cached (images by content, binaries by version): a warm run builds nothing and
# spends its time creating the cluster and in the suite. Timings of each phase are printed.
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/kind/common.sh"

mode=${E2E_MODE:-local}
name=${E2E_CLUSTER:-stepline-e2e}
python=${PYTHON:-$repo_root/.venv/bin/python}
[ -x "$python" ] || die "e2e: no Python at $python: run hack/install-python.sh (or set PYTHON)"
case $mode in
  local) node_image=local python_base=local ;;
  published) node_image=published python_base=public ;;
  *) die "e2e: E2E_MODE=$mode: expected local or published" ;;
esac

t0=$SECONDS
phase() { info "e2e: $1 in $((SECONDS - $2))s"; }

started=$SECONDS
[ "$mode" != local ] || "$here/kind/install-engine.sh"
mapfile -t images < <(PYTHON_BASE=$python_base "$here/build-images.sh" | cut -d= -f2)
[ ${#images[@]} -gt 0 ] || die "e2e: hack/build-images.sh built no image"
phase "images (${images[*]})" "$started"

eval "$("$here/kind/build-node-binaries.sh" kind)"
kind_cli="$kind/kind"
created=false
if ! "$kind_cli" get clusters 2>/dev/null | grep -qxF "$name"; then
  created=true
fi
cleanup() {
  local status=$?
  if $created && [ "${E2E_KEEP_CLUSTER:-0}" != 1 ]; then
    info "e2e: deleting the kind cluster '$name' (E2E_KEEP_CLUSTER=1 keeps it)"
    "$here/kind/cluster-down.sh" "$name" || info "e2e: could not delete the kind cluster '$name'"
  fi
  info "e2e: finished with status $status after $((SECONDS - t0))s"
}
trap cleanup EXIT

started=$SECONDS
NODE_IMAGE=$node_image "$here/kind/cluster-up.sh" "$name"
phase "cluster '$name' up" "$started"

started=$SECONDS
"$kind_cli" load docker-image --name "$name" "${images[@]}" >"$KIND_LOGS/kind-load-$name.log" 2>&1 ||
  die "e2e: kind load docker-image failed; see $KIND_LOGS/kind-load-$name.log"
phase "images loaded into the nodes" "$started"

started=$SECONDS
NODE_IMAGE=$node_image "$here/kind/metrics-server.sh" "$name"
phase "metrics-server serving" "$started"

kubeconfig="$KIND_CACHE/$name.kubeconfig"
"$kind_cli" get kubeconfig --name "$name" >"$kubeconfig"
started=$SECONDS
info "e2e: pytest tests/e2e against kind cluster '$name' (kubeconfig $kubeconfig)"
cd "$repo_root"
reports="$STEPLINE_CACHE/logs/e2e"
mkdir -p "$reports"
STEPLINE_E2E_KUBECONFIG=$kubeconfig STEPLINE_E2E_REPORTS=$reports "$python" -m pytest tests/e2e "$@"
phase "suite" "$started"
