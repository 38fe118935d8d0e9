#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, when they are missing.
# Needs root (CI and these machines run as root); prints what to install otherwise.
#
# Usage: hack/install-apt.sh [containers]
#   (none)      what `make test` and `make demo` need
#   containers  also the container path: docker.io (the engine) and debootstrap (base images)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

missing=()
need() { # package check-command...
  local package=$1
  shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}

need python3-venv python3 -c 'import ensurepip, venv'
# prometheus and promtool: the observability tests run a real Prometheus and check the alert rules.
need prometheus sh -c 'command -v prometheus && command -v promtool'
# chromium and its chromedriver: the browser tests (tests/integration/ui/test_browser.py) drive
# the web view through selenium; fonts-dejavu-core gives their screenshots legible text.
need chromium test -x /usr/bin/chromium
need chromium-driver test -x /usr/bin/chromedriver
need fonts-dejavu-core test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
case ${1:-} in
  "") ;;
  containers)
    need docker.io sh -c 'command -v dockerd'
    need debootstrap sh -c 'command -v debootstrap'
    ;;
  *) die "unknown package group '$1' (expected: containers)" ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  die "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
fi
info "installing Debian packages: ${missing[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
  die "apt-get install ${missing[*]} failed"
