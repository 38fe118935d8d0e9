#!/usr/bin/env bash
# Runs the end-to-end chart suite against any cluster, given its kubeconfig: the local control
# plane (hack/cluster-up.sh) or kind (kind-config.yaml). The suite installs the chart into a
# namespace enforcing the restricted Pod Security profile, waits for the operator Deployment,
# runs the operator under the chart's ServiceAccount token through a ServiceStep, a Workflow and a
# WorkflowRun, checks what that account may not do, upgrades and uninstalls.
#   KUBECONFIG=/path/to/kubeconfig hack/e2e.sh [extra pytest args]
# Cluster creation and image loading are the caller's (see .github/workflows/e2e.yaml); nothing
# here depends on which cluster it is.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

kubeconfig=${KUBECONFIG:-}
[ -n "$kubeconfig" ] || die "set KUBECONFIG to the kubeconfig of the cluster to test"
[ -f "$kubeconfig" ] || die "KUBECONFIG=$kubeconfig: no such file"
python=${PYTHON:-$repo_root/.venv/bin/python}
[ -x "$python" ] || die "no Python at $python: run hack/install-python.sh or set PYTHON"

info "chart tests against $(grep -m1 'server:' "$kubeconfig" | awk '{print $2}')"
cd "$repo_root"
STEPLINE_TEST_KUBECONFIG=$kubeconfig "$python" -m pytest -q \
  tests/unit/test_chart_templates.py tests/integration/test_chart_install.py "$@"
