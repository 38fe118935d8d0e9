"""The names users import from stepline.observability: sorted, complete and all resolvable, and
the package stays a leaf that the operator can import without the build-time generators."""

from __future__ import annotations

import subprocess
import sys

import stepline.observability


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions — the order ruff's RUF022 keeps too."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_is_sorted_without_duplicates() -> None:
    names = stepline.observability.__all__
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


def test_every_exported_name_resolves() -> None:
    missing = [n for n in stepline.observability.__all__ if not hasattr(stepline.observability, n)]
    assert missing == []


def test_importing_it_loads_neither_the_generators_nor_their_build_time_dependencies() -> None:
    probe = (
        "import sys, stepline.observability\n"
        "loaded = [m for m in sys.modules if m.startswith(('grafana_foundation_sdk', 'yaml'))"
        " or m in ('stepline.observability.dashboards', 'stepline.observability.rules')]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
