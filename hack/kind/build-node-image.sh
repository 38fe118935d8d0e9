#!/usr/bin/env bash
# Builds Stepline's kind node image offline: stepline.local/kind-node:<KUBE_VERSION>-<tag>.
#
# Usage: hack/kind/build-node-image.sh            (prints the image name on stdout)
#        FORCE=1 hack/kind/build-node-image.sh    (rebuild the node image and the images it preloads)
#
# Steps, each skipped when its result exists with the same inputs (label stepline.inputs, a hash
# of the build context):
#   1. base images (build-base-images.sh) and programs (hack/build-binaries.sh kubernetes etcd,
#      build-node-binaries.sh);
#   2. the images kubeadm asks for, under the names it asks for (registry.k8s.io/...), built FROM
#      our Debian image (pause FROM scratch), plus stepline-net, our pod network daemon;
#   3. the node image, the way `kind build node-image` makes one (we do not call it: it pulls
#      kindnetd and local-path images that cannot be built here): a container of the kind base
#      image gets kubelet/kubeadm/kubectl in /usr/bin, /kind/version, /kind/manifests/ (our CNI and
#      StorageClass), and the image archive imported into its containerd (namespace k8s.io,
#      pinned), then `docker commit`.
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"
require_go
require_docker

t0=$SECONDS
"$here/build-base-images.sh"
eval "$("$here/../build-binaries.sh" kubernetes etcd)"
eval "$("$here/build-node-binaries.sh" kubernetes-node coredns pause metrics-server)"
info "node-image: inputs ready after $((SECONDS - t0))s"

ctx_root=/tmp/kind-work/node-image.$$
rm -rf "$ctx_root"
mkdir -p "$ctx_root"
trap 'rm -rf "$ctx_root"' EXIT

# build_image <image> <dockerfile text> <file>...   (files are copied into the context)
build_image() {
  local image=$1 dockerfile=$2 ctx name inputs
  shift 2
  name=$(echo "$image" | tr '/:' '__')
  ctx="$ctx_root/$name"
  mkdir -p "$ctx"
  [ $# -eq 0 ] || cp "$@" "$ctx/"
  printf '%s\n' "$dockerfile" >"$ctx/Dockerfile"
  docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE" >"$ctx/.base-id"
  inputs=$(context_hash "$ctx")
  if [ -z "${FORCE:-}" ] && [ "$(image_inputs "$image")" = "$inputs" ]; then return 0; fi
  printf 'LABEL stepline.inputs=%s\n' "$inputs" >>"$ctx/Dockerfile"
  info "node-image: building $image"
  local old
  old=$(image_id "$image")
  run_logged "image $image" "$KIND_LOGS/build-image-$name.log" docker build -t "$image" "$ctx"
  retire_image "$old"
}

reg=registry.k8s.io
images=()
img() { images+=("$1"); }

img "$reg/pause:$PAUSE_VERSION"
build_image "$reg/pause:$PAUSE_VERSION" "FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT [\"/pause\"]" "$pause/pause"

img "$reg/etcd:$ETCD_IMAGE_TAG"
build_image "$reg/etcd:$ETCD_IMAGE_TAG" "FROM $DEBIAN_IMAGE
COPY etcd /usr/local/bin/etcd
CMD [\"/usr/local/bin/etcd\"]" "$etcd/etcd"

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  img "$reg/$c:$KUBE_VERSION"
  build_image "$reg/$c:$KUBE_VERSION" "FROM $DEBIAN_IMAGE
COPY $c /usr/local/bin/$c
ENTRYPOINT [\"/usr/local/bin/$c\"]" "$kubernetes/$c"
done

img "$reg/kube-proxy:$KUBE_VERSION"
build_image "$reg/kube-proxy:$KUBE_VERSION" "FROM $DEBIAN_IMAGE
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      iptables nftables conntrack kmod \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/* /usr/share/doc/* /usr/share/man/*
COPY kube-proxy /usr/local/bin/kube-proxy
ENTRYPOINT [\"/usr/local/bin/kube-proxy\"]" "$kubernetes_node/kube-proxy"

img "$reg/coredns/coredns:$COREDNS_VERSION"
build_image "$reg/coredns/coredns:$COREDNS_VERSION" "FROM $DEBIAN_IMAGE
COPY coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT [\"/coredns\"]" "$coredns/coredns"

# Not needed by kubeadm; preloaded so hack/kind/metrics-server.sh (and HPAs) work offline.
img "$reg/metrics-server/metrics-server:$METRICS_SERVER_VERSION"
build_image "$reg/metrics-server/metrics-server:$METRICS_SERVER_VERSION" "FROM $DEBIAN_IMAGE
COPY metrics-server /metrics-server
USER 65534:65534
ENTRYPOINT [\"/metrics-server\"]" "$metrics_server/metrics-server"

img "$NET_IMAGE"
build_image "$NET_IMAGE" "FROM $DEBIAN_IMAGE
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      iproute2 iptables curl jq ca-certificates \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/* /usr/share/doc/* /usr/share/man/*
COPY stepline-net.sh /usr/local/bin/stepline-net
ENTRYPOINT [\"/usr/local/bin/stepline-net\"]" "$here/stepline-net/stepline-net.sh"

# kubeadm must find every image it wants among ours.
wanted=$("$kubernetes_node/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null) ||
  die "node-image: kubeadm config images list failed ($kubernetes_node/kubeadm)"
for w in $wanted; do
  printf '%s\n' "${images[@]}" | grep -qxF "$w" ||
    die "node-image: kubeadm $KUBE_VERSION wants $w, which this script does not build (update hack/kind/versions.env)"
done

# The node image is rebuilt when the base image, a preloaded image, a node binary or our
# manifests change.
mkdir -p "$ctx_root/node-inputs"
{
  docker image inspect -f '{{.Id}}' "$KIND_BASE_IMAGE" "${images[@]}"
  sha256sum "$kubernetes_node/kubelet" "$kubernetes_node/kubeadm" "$kubernetes/kubectl" \
    "$here/stepline-net/default-cni.yaml" "$here/stepline-net/default-storage.yaml" "$0" | cut -d' ' -f1
} >"$ctx_root/node-inputs/list"
node_inputs=$(context_hash "$ctx_root/node-inputs")
if [ -z "${FORCE:-}" ] && [ "$(image_inputs "$KIND_NODE_IMAGE")" = "$node_inputs" ]; then
  info "node-image: $KIND_NODE_IMAGE up to date ($((SECONDS - t0))s)"
  echo "$KIND_NODE_IMAGE"
  exit 0
fi

archive="$ctx_root/preload.tar"
info "node-image: docker save ${#images[@]} images"
docker save -o "$archive" "${images[@]}" || die "node-image: docker save failed"

started=$SECONDS
build=stepline-node-build-$$
trap 'docker rm -f "$build" >/dev/null 2>&1 || true; rm -rf "$ctx_root"' EXIT
docker run -d --name "$build" --entrypoint sleep --security-opt seccomp=unconfined "$KIND_BASE_IMAGE" infinity >/dev/null ||
  die "node-image: could not start a build container from $KIND_BASE_IMAGE (daemon log: $DOCKERD_LOG)"
for b in "$kubernetes_node/kubelet" "$kubernetes_node/kubeadm" "$kubernetes/kubectl"; do
  docker cp "$b" "$build:/usr/bin/$(basename "$b")" || die "node-image: docker cp $b failed"
done
sed "s#STEPLINE_NET_IMAGE#$NET_IMAGE#" "$here/stepline-net/default-cni.yaml" >"$ctx_root/default-cni.yaml"
docker exec "$build" mkdir -p /kind/manifests
docker cp "$ctx_root/default-cni.yaml" "$build:/kind/manifests/default-cni.yaml"
docker cp "$here/stepline-net/default-storage.yaml" "$build:/kind/manifests/default-storage.yaml"
docker exec "$build" sh -c "chown -R root:root /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl /kind/manifests \
  && chmod 0755 /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl && chmod 0644 /kind/manifests/* \
  && printf %s '$KUBE_VERSION' > /kind/version"

log="$KIND_LOGS/build-node-image.log"
info "node-image: importing images into the node's containerd (log: $log)"
if ! docker exec "$build" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &' ||
  ! docker exec "$build" bash -c 'for i in $(seq 1 30); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1'; then
  docker exec "$build" cat /var/log/containerd-build.log >"$log" 2>&1 || true
  die "node-image: containerd did not start in the build container; see $log"
fi
docker exec -i "$build" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
  --all-platforms --no-unpack --digests - <"$archive" >"$log" 2>&1 ||
  die "node-image: ctr images import failed; see $log"
docker exec "$build" ctr --namespace=k8s.io images list -q >>"$log"
docker exec "$build" bash -c 'pkill containerd; for i in $(seq 1 20); do pgrep containerd >/dev/null || exit 0; sleep 0.5; done'
docker exec "$build" rm -rf /var/log/containerd-build.log /tmp/*

old=$(image_id "$KIND_NODE_IMAGE")
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
  --change "LABEL stepline.inputs=$node_inputs" \
  "$build" "$KIND_NODE_IMAGE" >/dev/null || die "node-image: docker commit failed (daemon log: $DOCKERD_LOG)"
retire_image "$old"
info "node-image: $KIND_NODE_IMAGE built (node assembly $((SECONDS - started))s, total $((SECONDS - t0))s," \
  "$(docker image inspect -f '{{.Size}}' "$KIND_NODE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
echo "$KIND_NODE_IMAGE"
