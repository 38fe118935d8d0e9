#!/usr/bin/env bash
# Builds (once) the Debian image every local image starts FROM, since no registry is reachable
# here: stepline.local/debian:<suite>, a minbase root filesystem made by debootstrap from Debian's
# mirror and imported. The rootfs tarball is cached in $STEPLINE_CACHE/kind/rootfs/, so a lost
# image is re-imported without a new debootstrap. Prints the image's tag on stdout.
#
# Usage: hack/build-debian-image.sh
# Used by hack/build-images.sh (the Python base of Stepline's images) and
# hack/kind/build-base-images.sh (kind's node base).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/common.sh
source "$here/kind/common.sh"
require_docker

rootfs_tar="$KIND_CACHE/rootfs/debian-$DEBIAN_SUITE-minbase.tar"
if ! image_exists "$DEBIAN_IMAGE"; then
  if [ ! -s "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null 2>&1 || die "debian: debootstrap not found; run hack/install-apt.sh containers"
    started=$SECONDS
    work=/tmp/kind-work/rootfs-$DEBIAN_SUITE.$$
    rm -rf "$work"
    mkdir -p "$work" "$(dirname "$rootfs_tar")"
    trap 'rm -rf "$work"' EXIT
    info "debian: debootstrap --variant=minbase $DEBIAN_SUITE (about a minute; log: $KIND_LOGS/debootstrap.log)"
    run_logged "debian (debootstrap)" "$KIND_LOGS/debootstrap.log" \
      debootstrap --variant=minbase "$DEBIAN_SUITE" "$work" "$DEBIAN_MIRROR"
    # Slim it the way Debian's -slim images do; apt lists are fetched again by the images that
    # install packages.
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* "$work"/usr/share/doc/* \
      "$work"/usr/share/man/* "$work"/usr/share/locale/* "$work"/var/log/*
    tar --numeric-owner -C "$work" -cf "$rootfs_tar.partial" .
    mv "$rootfs_tar.partial" "$rootfs_tar"
    rm -rf "$work"
    info "debian: root filesystem in $((SECONDS - started))s ($(du -h "$rootfs_tar" | cut -f1))"
  fi
  info "debian: docker import $DEBIAN_IMAGE"
  docker import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$rootfs_tar" "$DEBIAN_IMAGE" >/dev/null || die "debian: docker import of $rootfs_tar failed"
fi
echo "$DEBIAN_IMAGE"
