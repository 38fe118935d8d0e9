#!/usr/bin/env bash
# Creates .venv with Python >= 3.11 and installs Stepline with its dev extra, editable.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || die "python3 not found: install Python >= 3.11"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$("$python" --version 2>&1) is too old: Stepline needs Python >= 3.11 (set PYTHON=/path/to/python3.11)"

venv=$repo_root/.venv
stamp=$venv/.installed-$(sha256sum "$repo_root/pyproject.toml" | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  info "creating $venv"
  "$python" -m venv "$venv" || die "python3 -m venv failed: install the venv module (apt-get install python3-venv)"
fi
info "installing stepline[dev] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo_root[dev]" ||
  die "pip install failed: is PyPI reachable? (see the pip output above)"
rm -f "$venv"/.installed-*
touch "$stamp"
