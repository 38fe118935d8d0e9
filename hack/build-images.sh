#!/usr/bin/env bash
# Builds Stepline's images on a machine that reaches no image registry: the operator and the
# example steps, on a Python base image made here from Debian's packages, prometheus-adapter
# (the chart's scaling.adapter) and Prometheus (for the real-pods suite's scaling on load).
#
# Usage: hack/build-images.sh [image...]   (images: operator, finance-user-validation,
#        finance-order-processing, finance-trade-settlement, finance-order-cancellation,
#        manufacturing-device-monitoring, manufacturing-production-scheduling,
#        manufacturing-quality-inspection, city-traffic-flow, city-air-quality,
#        city-service-complaints, city-report, prometheus-adapter, prometheus; default all)
#
# The base (`stepline.local/python:3.11-bookworm-<key>`) is Debian's python3, venv and pip on
# the Debian bookworm image made here by debootstrap (hack/build-debian-image.sh). It stands in
# for python:3.11-slim: `python` and `pip` on PATH, pip free to install into the system Python
# (PIP_BREAK_SYSTEM_PACKAGES, as in the official image). It trusts what this host trusts (the
# host's CA bundle is copied in), so that pip in a build reaches PyPI as the host does. The key
# is a digest of its recipe and inputs: it is built once, and a changed recipe makes a new one.
#
# The Dockerfiles keep their public default base for users who have a registry and take this one
# through the build argument PYTHON_IMAGE. Docker's layer cache makes a second run rebuild
# nothing. Prints nothing on stdout but the tag of each image built ("<image>=<tag>").
#
#   PYTHON_BASE=local    (default) the base made here, offline
#   PYTHON_BASE=public   the Dockerfiles' own public base (python:3.11-slim), for machines that
#                        reach Docker Hub (the GitHub workflow)
#
# prometheus-adapter (`stepline/prometheus-adapter:$PROMETHEUS_ADAPTER_VERSION`) is upstream's
# binary, built from its Go module by hack/build-binaries.sh, copied onto the Debian image of
# hack/build-debian-image.sh (debian:bookworm-slim with PYTHON_BASE=public): no Python, no Dockerfile.
# Prometheus (`stepline/prometheus:<Debian's version>`) is Debian's own binary (the `prometheus`
# package hack/install-apt.sh installs for the tests), copied onto the same image: bookworm on
# both sides, so the one library it links, glibc, matches.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

VERSION=0.1.0
logs="$STEPLINE_CACHE/logs"

# The Python base: Debian's python3, venv and pip on the Debian image hack/build-debian-image.sh
# makes (shared with kind's node base). The host's CA bundle goes in last, so that pip in a build
# reaches PyPI as the host does (a proxy that re-signs TLS included).
base_dockerfile() { # debian-image
  cat <<EOF
FROM $1
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      python3 python3-venv python3-pip python-is-python3 ca-certificates \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 PIP_BREAK_SYSTEM_PACKAGES=1
CMD ["python3"]
EOF
}

ensure_base() {
  local debian key tag ctx log="$logs/image-base.log" started=$SECONDS
  debian=$("$here/build-debian-image.sh")
  key=$({ base_dockerfile "$debian"; docker image inspect -f '{{.Id}}' "$debian"
    sha256sum </etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -c1-12)
  tag="stepline.local/python:3.11-bookworm-$key"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/stepline-python-base.XXXXXX")
    base_dockerfile "$debian" >"$ctx/Dockerfile"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
    info "base image: $tag: Debian's python3 on $debian (log: $log)"
    docker build --network host -t "$tag" "$ctx" >"$log" 2>&1 ||
      { rm -rf "$ctx"; tail -n 15 "$log" >&2; die "base image: docker build failed; see $log"; }
    rm -rf "$ctx"
    info "base image: $tag in $((SECONDS - started))s"
  fi
  echo "$tag"
}

# An image of one Go binary, run as nobody (the chart's runAsUser 65534).
binary_dockerfile() { # debian-image binary-name
  cat <<EOF
FROM $1
COPY $2 /$2
USER 65534:65534
ENTRYPOINT ["/$2"]
EOF
}

build_binary_image() { # base-mode (local or public) image tag binary-path
  local mode=$1 image=$2 tag=$3 bin=$4 debian ctx name
  local log="$logs/image-$image.log" started=$SECONDS
  name=$(basename "$bin")
  if [ "$mode" = local ]; then debian=$("$here/build-debian-image.sh"); else debian=debian:bookworm-slim; fi
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/stepline-$image-image.XXXXXX")
  binary_dockerfile "$debian" "$name" >"$ctx/Dockerfile"
  cp "$bin" "$ctx/$name"
  docker build -t "$tag" "$ctx" >"$log" 2>&1 ||
    { rm -rf "$ctx"; tail -n 15 "$log" >&2; die "$image: docker build failed; see $log"; }
  rm -rf "$ctx"
  info "$image: $tag in $((SECONDS - started))s"
  echo "$image=$tag"
}

build_adapter_image() { # base-mode
  local bin
  bin=$("$here/build-binaries.sh" adapter | cut -d= -f2-)/adapter
  build_binary_image "$1" prometheus-adapter "stepline/prometheus-adapter:$PROMETHEUS_ADAPTER_VERSION" "$bin"
}

build_prometheus_image() { # base-mode
  local version
  command -v prometheus >/dev/null || die "prometheus: not installed; run hack/install-apt.sh"
  version=$(dpkg-query -W -f '${Version}' prometheus | tr -c 'A-Za-z0-9_.\n-' '_')
  build_binary_image "$1" prometheus "stepline/prometheus:$version" "$(command -v prometheus)"
}

# image name → Dockerfile and build context, relative to the repository root.
recipe() { # image
  case $1 in
    operator) echo "Dockerfile ." ;;
    finance-user-validation) echo "examples/finance/user-validation.Dockerfile examples" ;;
    finance-order-processing) echo "examples/finance/order-processing.Dockerfile examples" ;;
    finance-trade-settlement) echo "examples/finance/trade-settlement.Dockerfile examples" ;;
    finance-order-cancellation) echo "examples/finance/order-cancellation.Dockerfile examples" ;;
    manufacturing-device-monitoring) echo "examples/manufacturing/device-monitoring.Dockerfile examples" ;;
    manufacturing-production-scheduling) echo "examples/manufacturing/production-scheduling.Dockerfile examples" ;;
    manufacturing-quality-inspection) echo "examples/manufacturing/quality-inspection.Dockerfile examples" ;;
    city-traffic-flow) echo "examples/city/traffic-flow.Dockerfile examples" ;;
    city-air-quality) echo "examples/city/air-quality.Dockerfile examples" ;;
    city-service-complaints) echo "examples/city/service-complaints.Dockerfile examples" ;;
    city-report) echo "examples/city/city-report.Dockerfile examples" ;;
    prometheus-adapter | prometheus) echo "- -" ;; # no Dockerfile: build_binary_image
    *) die "unknown image '$1' (expected: operator finance-user-validation finance-order-processing finance-trade-settlement finance-order-cancellation manufacturing-device-monitoring manufacturing-production-scheduling manufacturing-quality-inspection city-traffic-flow city-air-quality city-service-complaints city-report prometheus-adapter prometheus)" ;;
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
  local images=("$@") mode=${PYTHON_BASE:-local} base=""
  [ ${#images[@]} -gt 0 ] || images=(operator finance-user-validation finance-order-processing
    finance-trade-settlement finance-order-cancellation manufacturing-device-monitoring
    manufacturing-production-scheduling manufacturing-quality-inspection city-traffic-flow
    city-air-quality city-service-complaints city-report prometheus-adapter prometheus)
  for image in "${images[@]}"; do recipe "$image" >/dev/null; done
  mkdir -p "$logs"
  require_docker
  case $mode in
    local | public) ;;
    *) die "PYTHON_BASE=${PYTHON_BASE}: expected local or public" ;;
  esac
  # The Python base only when a Python image is asked for (the others are Go binaries).
  if [ "$mode" = local ] && printf '%s\n' "${images[@]}" | grep -qvxE 'prometheus(-adapter)?'; then
    base=$(ensure_base)
  fi
  for image in "${images[@]}"; do
    if [ "$image" = prometheus-adapter ]; then
      build_adapter_image "$mode"
    elif [ "$image" = prometheus ]; then
      build_prometheus_image "$mode"
    else
      build_image "$image" "$base"
    fi
  done
}

main "$@"
