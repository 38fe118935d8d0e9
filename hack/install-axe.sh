#!/usr/bin/env bash
# Fetches axe-core, the accessibility checker the browser tests inject into the web view's pages
# (tests/integration/browser.py), into the cache outside git, keyed by version:
# $STEPLINE_CACHE/axe-core-<version>/axe.min.js. Re-running is free once it is there.
#
# The package comes from the npm registry through npm itself (`npm pack`), and its tarball must
# match the integrity pinned here, so a republished or tampered package fails loudly.
#
# Usage: hack/install-axe.sh    prints the path of axe.min.js on its last line
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

# tests/integration/browser.py reads these two lines: change them together with the tests.
AXE_CORE_VERSION=4.14.1
AXE_CORE_INTEGRITY=sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==

target=$STEPLINE_CACHE/axe-core-$AXE_CORE_VERSION
if [ -s "$target/axe.min.js" ]; then
  echo "$target/axe.min.js"
  exit 0
fi
command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js with npm (apt-get install npm)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
info "fetching axe-core $AXE_CORE_VERSION (npm pack)"
(cd "$work" && npm pack --silent --json "axe-core@$AXE_CORE_VERSION" >pack.json) ||
  die "npm pack axe-core@$AXE_CORE_VERSION failed: is the npm registry reachable?"
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$work/pack.json")
[ "$got" = "$AXE_CORE_INTEGRITY" ] ||
  die "axe-core $AXE_CORE_VERSION: integrity $got, expected $AXE_CORE_INTEGRITY"
tar -xzf "$work/axe-core-$AXE_CORE_VERSION.tgz" -C "$work" package/axe.min.js package/LICENSE
mkdir -p "$target"
# Into place whole: a run stopped halfway leaves no truncated axe.min.js behind.
cp "$work/package/LICENSE" "$target/LICENSE"
cp "$work/package/axe.min.js" "$target/axe.min.js.partial"
mv "$target/axe.min.js.partial" "$target/axe.min.js"
echo "$target/axe.min.js"
