"""The `cel` package (common-expression-language), loaded without its command line.

`cel/__init__.py` imports `cel.cli`, an interactive REPL built on typer, prompt_toolkit, pygments
and rich. Stepline uses none of it, and those imports cost the operator megabytes of its
resident memory (bench/steps/RESULTS.md has the figure). A placeholder stands in for `cel.cli`
while the package loads and is removed afterwards, so a later `import cel.cli` (`python -m cel`)
still gets the real one. If something imported `cel` before us, it is used as it is.

Everyone in Stepline imports CEL from here: `from stepline.api.celbinding import cel`.
"""

from __future__ import annotations

import sys
import types

_CLI = "cel.cli"

if "cel" not in sys.modules:
    _placeholder = types.ModuleType(_CLI, "Stepline loads cel without its CLI")
    sys.modules[_CLI] = _placeholder
    try:
        import cel
    finally:
        if sys.modules.get(_CLI) is _placeholder:
            del sys.modules[_CLI]
    if getattr(cel, "cli", None) is _placeholder:
        delattr(cel, "cli")

import cel  # noqa: E402 (after the placeholder above)
from cel.stdlib import EXTENSIONS  # noqa: E402

__all__ = ["EXTENSIONS", "cel"]
