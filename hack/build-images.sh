#!/usr/bin/env bash
# Builds Stepline's images on a machine that reaches no image registry: the operator and the
# example steps, on a Python base image made here from Debian's packages.
#
# Usage: hack/build-images.sh [image...]   (images: operator, finance-user-validation,
#        finance-order-processing, manufacturing-device-monitoring,
#        manufacturing-production-scheduling, manufacturing-quality-inspection; default all)
#
# The base (`stepline-local/python:3.11-bookworm-<key>`) is a Debian bookworm root filesystem
# made by debootstrap with Debian's python3, venv and pip, imported with `docker import`. It
# stands in for python:3.11-slim: `python` and `pip` on PATH, pip free to install into the system
# Python (PIP_BREAK_SYSTEM_PACKAGES, as in the official image). It trusts what this host trusts
# (the host's CA bundle is copied in), so that pip in a build reaches PyPI as the host does. The
# key is a digest of its recipe: it is built once, and a changed recipe makes a new one.
#
# The Dockerfiles keep their public default base for users who have a registry and take this one
# through the build argument PYTHON_IMAGE. Docker's layer cache makes a second run rebuild
# nothing. Prints nothing on stdout but the tag of each image built ("<image>=<tag>").
#
#   PYTHON_BASE=local    (default) the base made here, offline
#   PYTHON_BASE=public   the Dockerfiles' own public base (python:3.11-slim), for machines that
#                        reach Docker Hub (the GitHub workflow)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

rootfs_to_remove=""
trap 'if [ -n "$rootfs_to_remove" ]; then rm -rf "$rootfs_to_remove"; fi' EXIT

SUITE=bookworm
MIRROR=${STEPLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
VERSION=0.1.0
logs="$STEPLINE_CACHE/logs"

base_tag() {
  local key
  key=$(printf '%s\n' "$SUITE" "$PACKAGES" "$(declare -f build_base)" | sha256sum | cut -c1-12)
  echo "stepline-local/python:3.11-$SUITE-$key"
}

build_base() { # tag
  local tag=$1 root log="$logs/image-base.log" started=$SECONDS
  command -v debootstrap >/dev/null 2>&1 ||
    die "debootstrap not found: run hack/install-apt.sh containers"
  root=$(mktemp -d "${TMPDIR:-/tmp}/stepline-rootfs.XXXXXX")
  rootfs_to_remove=$root # by the EXIT trap, whichever way this ends
  info "base image: debootstrap $SUITE with $PACKAGES (a minute or two; log: $log)"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$log" 2>&1 ||
    die "base image: debootstrap failed; see $log"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'CMD ["python3"]' \
    - "$tag" >>"$log" 2>&1 || die "base image: docker import failed; see $log"
  rm -rf "$root"
  info "base image: $tag in $((SECONDS - started))s"
}

ensure_base() {
  local tag
  tag=$(base_tag)
  docker image inspect "$tag" >/dev/null 2>&1 || build_base "$tag"
  echo "$tag"
}

# image name → Dockerfile and build context, relative to the repository root.
recipe() { # image
  case $1 in
    operator) echo "Dockerfile ." ;;
    finance-user-validation) echo "examples/finance/user-validation.Dockerfile examples" ;;
    finance-order-processing) echo "examples/finance/order-processing.Dockerfile examples" ;;
    manufacturing-device-monitoring) echo "examples/manufacturing/device-monitoring.Dockerfile examples" ;;
    manufacturing-production-scheduling) echo "examples/manufacturing/production-scheduling.Dockerfile examples" ;;
    manufacturing-quality-inspection) echo "examples/manufacturing/quality-inspection.Dockerfile examples" ;;
    *) die "unknown image '$1' (expected: operator finance-user-validation finance-order-processing manufacturing-device-monitoring manufacturing-production-scheduling manufacturing-quality-inspection)" ;;
  esac
}

build_image() { # image base (empty: the Dockerfile's public default)
  local image=$1 base=$2 dockerfile context tag log started=$SECONDS args=()
  read -r dockerfile context <<<"$(recipe "$image")"
  tag="stepline/$image:$VERSION"
  log="$logs/image-$image.log"
  # Host networking: the build's pip goes out the way the host's does.
  [ -z "$base" ] || args=(--network host --build-arg "PYTHON_IMAGE=$base")
  (cd "$repo_root" && docker build "${args[@]}" -f "$dockerfile" -t "$tag" "$context") >"$log" 2>&1 ||
    { tail -n 15 "$log" >&2; die "$image: docker build failed; see $log"; }
  info "$image: $tag in $((SECONDS - started))s"
  echo "$image=$tag"
}

main() {
  local images=("$@") base
  [ ${#images[@]} -gt 0 ] || images=(operator finance-user-validation finance-order-processing
    manufacturing-device-monitoring manufacturing-production-scheduling
    manufacturing-quality-inspection)
  for image in "${images[@]}"; do recipe "$image" >/dev/null; done
  mkdir -p "$logs"
  require_docker
  case ${PYTHON_BASE:-local} in
    local) base=$(ensure_base) ;;
    public) base="" ;;
    *) die "PYTHON_BASE=${PYTHON_BASE}: expected local or public" ;;
  esac
  for image in "${images[@]}"; do build_image "$image" "$base"; done
}

main "$@"
