# Shared by cluster-up.sh and cluster-down.sh: where a cluster's state lives. Sourced, not run.
# shellcheck shell=bash

# shellcheck source=hack/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

cluster=${STEPLINE_CLUSTER:-stepline}
state=${STEPLINE_STATE:-$repo_root/.stepline}
# kwokctl keeps each cluster's PKI, pid files and logs under its work dir; one per state folder,
# so two checkouts never share (or stop) each other's clusters.
export KWOK_WORKDIR=$state/kwok
cluster_dir=$KWOK_WORKDIR/clusters/$cluster
kubeconfig=$state/kubeconfig
kwokctl=$(component_dir kwok)/kwokctl

# Links kubectl, helm and kwokctl into $state/bin for people who want them on their PATH.
link_tools() {
  mkdir -p "$state/bin"
  ln -sf "$(component_dir kubernetes)/kubectl" "$state/bin/kubectl"
  ln -sf "$(component_dir kwok)/kwokctl" "$state/bin/kwokctl"
  if [ -x "$(component_dir helm)/helm" ]; then ln -sf "$(component_dir helm)/helm" "$state/bin/helm"; fi
}

kube() { "$(component_dir kubernetes)/kubectl" --kubeconfig "$kubeconfig" "$@"; }

cluster_exists() { [ -f "$cluster_dir/kwok.yaml" ]; }

api_ready() { [ "$(kube get --raw /readyz 2>/dev/null)" = ok ]; }

port_in_use() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)

all_components_running() {
  local c
  for c in "${components[@]}"; do component_running "$c" || return 1; done
}

# The components that are not running, space-separated.
dead_components() {
  local c dead=""
  for c in "${components[@]}"; do component_running "$c" || dead+=" $c"; done
  echo "${dead# }"
}

# A component runs when the pid in its pid file is alive, not a zombie (kwokctl starts the
# components detached; an exited one lingers as a zombie until it is reaped) and still this
# cluster's binary (kwokctl/clusters/<name>/bin/<component>), not a process that got the pid later.
component_running() { # component
  local pidfile="$cluster_dir/pids/$1.pid" stat command
  [ -f "$pidfile" ] || return 1
  read -r stat command < <(ps -o stat=,args= -p "$(cat "$pidfile")" 2>/dev/null) || return 1
  [ "${stat:0:1}" != Z ] && [[ ${command%% *} == */bin/"$1" ]]
}

# kwokctl counts a component as running while the pid in its pid file answers kill -0, which a
# zombie and a stranger that got the pid later both do: `kwokctl start cluster` would not restart
# it and `kwokctl delete cluster` would kill the stranger. Removing the pid file of every component
# that is not running makes kwokctl start it again and leave the pid alone.
forget_dead_components() {
  local c
  for c in "${components[@]}"; do
    component_running "$c" || rm -f "$cluster_dir/pids/$c.pid"
  done
}
