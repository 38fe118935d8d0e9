#!/usr/bin/env bash
# Builds the two local base images everything else starts FROM (no registry is reachable here):
#
#   stepline.local/debian:<suite>         Debian minbase root filesystem (hack/build-debian-image.sh,
#                                         shared with the Python base of hack/build-images.sh);
#   stepline.local/kind-base:<kind>-<tag> the equivalent of kind's kindest/base: Debian packages a
#                                         node needs, kind's own node files (entrypoint, systemd
#                                         units, containerd config: taken from the sigs.k8s.io/kind
#                                         module at build time), and containerd, runc, crictl and
#                                         CNI plugins built by build-node-binaries.sh, with our runc
#                                         wrapper in front of runc.
#
# Usage: hack/kind/build-base-images.sh        (each image is only built when missing)
# Needs: hack/kind/install-engine.sh (docker), network access to the Debian mirror.
# shellcheck disable=SC2154 # component folders are set by eval of the build scripts' output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/common.sh"
require_go
require_docker

# --- Debian base --------------------------------------------------------------------------------
"$here/../build-debian-image.sh" >/dev/null

# --- kind base ----------------------------------------------------------------------------------
eval "$("$here/build-node-binaries.sh" containerd runc crictl cni-plugins)"
kind_src=$(kind_module_dir)/images/base/files
[ -d "$kind_src" ] || die "kind-base: $kind_src missing in the sigs.k8s.io/kind module"

ctx=/tmp/kind-work/kind-base-context.$$
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/cni"
trap 'rm -rf "$ctx"' EXIT
cp -r "$kind_src" "$ctx/files"
chmod -R u+w "$ctx/files"
# containerd config: kind's, minus the fuse-overlayfs proxy plugin (rootless only; we do not ship
# its daemon) and with the pause image kubeadm of our Kubernetes asks for.
python3 - "$ctx/files/etc/containerd/config.toml" "$PAUSE_VERSION" <<'EOF'
import re, sys
path, pause = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r'\[proxy_plugins\]\n(#.*\n)?\[proxy_plugins\."fuse-overlayfs"\]\n(  .*\n)+', '', text)
text = re.sub(r'sandbox_image = "registry.k8s.io/pause:[^"]*"', f'sandbox_image = "registry.k8s.io/pause:{pause}"', text)
open(path, "w").write(text)
EOF
# kubelet >= 1.35 refuses cgroup v1 unless told otherwise. Its --fail-cgroupv1 flag (kept, not
# deprecated, and flags win over the kubeadm-written config) goes into kind's /etc/default/kubelet,
# so an unchanged `kind create cluster --config kind-config.yaml --image <ours>` works on cgroup v1
# hosts; on cgroup v2 hosts it changes nothing.
grep -q -- '--fail-cgroupv1' "$ctx/files/etc/default/kubelet" ||
  sed -i 's/^KUBELET_EXTRA_ARGS=\(.*\)$/KUBELET_EXTRA_ARGS=\1 --fail-cgroupv1=false/' "$ctx/files/etc/default/kubelet"
grep -q -- '--fail-cgroupv1=false' "$ctx/files/etc/default/kubelet" ||
  die "kind-base: could not add --fail-cgroupv1=false to kind's etc/default/kubelet"
cp "$containerd"/containerd "$containerd"/ctr "$containerd"/containerd-shim-runc-v2 "$ctx/bin/"
cp "$runc/runc" "$ctx/bin/runc.real"
cp "$RUNC_WRAPPER" "$ctx/bin/runc" 2>/dev/null ||
  die "kind-base: runc wrapper $RUNC_WRAPPER missing; run hack/kind/install-engine.sh"
cp "$crictl/crictl" "$ctx/bin/"
cp "$cni_plugins"/* "$ctx/cni/"
rm -f "$ctx/cni/.complete"

cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
# Packages a node needs (the list of kind's images/base/Dockerfile minus storage-test and rootless
# extras), then the same systemd trimming kind does.
RUN chmod 0755 /usr/local/bin/* /kind/bin/* \\
 && apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \\
      libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/* /usr/share/doc/* /usr/share/man/* \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && ln -sf /usr/lib/systemd/systemd /sbin/init
COPY bin/containerd bin/ctr bin/containerd-shim-runc-v2 bin/crictl /usr/local/bin/
# runc is our wrapper (drops capabilities the node lacks, clamps rlimits), runc.real the real one.
COPY bin/runc bin/runc.real /usr/local/sbin/
COPY cni/ /opt/cni/bin/
RUN systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && ctr oci spec \\
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && containerd --version && runc --version && crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
EOF
echo "base=$(docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")" >"$ctx/inputs"
inputs=$(context_hash "$ctx")
if [ "$(image_inputs "$KIND_BASE_IMAGE")" = "$inputs" ]; then
  info "kind-base: $KIND_BASE_IMAGE up to date"
  exit 0
fi
printf 'LABEL stepline.inputs=%s\n' "$inputs" >>"$ctx/Dockerfile"

started=$SECONDS
info "kind-base: building $KIND_BASE_IMAGE (log: $KIND_LOGS/build-kind-base-image.log)"
old=$(image_id "$KIND_BASE_IMAGE")
run_logged kind-base "$KIND_LOGS/build-kind-base-image.log" docker build -t "$KIND_BASE_IMAGE" "$ctx"
retire_image "$old"
info "kind-base: built in $((SECONDS - started))s ($(docker image inspect -f '{{.Size}}' "$KIND_BASE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
