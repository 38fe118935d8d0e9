"""CEL is loaded without the `cel` package's interactive command line (its imports cost memory)."""

from __future__ import annotations

import json
import subprocess
import sys

from stepline.api.celbinding import EXTENSIONS, cel


def _modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_loading_stepline_api_leaves_out_the_cel_command_line() -> None:
    assert "cel.cli" not in _modules_after("import stepline.api")


def test_cel_compiles_and_evaluates_through_the_binding() -> None:
    assert cel.compile("input.a + 1").execute({"input": {"a": 41}}) == 42
    assert "strings" in EXTENSIONS


def test_the_real_command_line_can_still_be_imported_afterwards() -> None:
    modules = _modules_after("import stepline.api\nimport cel.cli\nassert cel.cli.app")

    assert "typer" in modules
