"""The package's shape: layers import downward only (import-linter, configured in
pyproject.toml), no module imports itself through others, and `operator/` is not a package that
would shadow the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

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


def find_import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    # Imports under TYPE_CHECKING count too: a cycle of types is a cycle of meaning.
    graph = grimp.build_graph("stepline")
    assert "stepline.controllers.wiring" in graph.modules  # the graph is real
    assert find_import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("from cyclic import c\n")
    (package / "c.py").write_text("from cyclic import a\n")
    (package / "d.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert find_import_cycles(grimp.build_graph("cyclic")) == [["cyclic.a", "cyclic.b", "cyclic.c"]]


def test_operator_folder_is_not_a_package_shadowing_the_stdlib() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()


# Libraries the running operator has no use for, several MiB of resident memory once imported:
# the `cel` package's REPL, and httpx's command line with rich and pygments (httpx imports it
# whenever they are installed, unless told not to: stepline/__init__.py).
UNUSED_BY_THE_OPERATOR = ("cel.cli", "typer", "prompt_toolkit", "httpx._main", "rich", "pygments")


def test_the_operator_does_not_load_libraries_it_does_not_use() -> None:
    script = (
        "import json, sys\n"
        "from stepline.controllers.wiring import register_handlers\n"
        "register_handlers()\n"
        "print(json.dumps(sorted(name for name, module in sys.modules.items() if module)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))

    assert {"cel", "httpx"} <= loaded  # the module list is real
    assert sorted(loaded & set(UNUSED_BY_THE_OPERATOR)) == []
