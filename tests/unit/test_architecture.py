"""The package's shape: layers import downward only (import-linter, configured in
pyproject.toml) and `operator/` is not a package that would shadow the standard library."""

from __future__ import annotations

import json
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


# Libraries the running operator has no use for, several MiB of resident memory once imported:
# the `cel` package's REPL. (rich and pygments do load: httpx, which carries the operator's HTTP
# off the hot path, imports its own command line with them whenever they are installed.)
UNUSED_BY_THE_OPERATOR = ("cel.cli", "typer", "prompt_toolkit")


def test_the_operator_does_not_load_libraries_it_does_not_use() -> None:
    handlers = "stepline.controllers." + ", stepline.controllers.".join(
        ["lifecycle", "runs", "servicesteps", "workflows"]
    )
    script = f"import json, sys, {handlers}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))

    assert "cel" in loaded  # the module list is real
    assert sorted(loaded & set(UNUSED_BY_THE_OPERATOR)) == []
