"""The package's shape: layers import downward only (import-linter, configured in
pyproject.toml) and `operator/` is not a package that would shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_layers_import_downward_only() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" in out.stdout  # the summary line: "Contracts: N kept, 0 broken."
    assert " 0 broken" in out.stdout


def test_operator_folder_is_not_a_package_shadowing_the_stdlib() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
