"""The names callers import from stepline.engine: sorted, unique and all resolvable."""

from __future__ import annotations

import stepline.engine


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions — the order ruff's RUF022 keeps too."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_is_sorted_without_duplicates() -> None:
    names = stepline.engine.__all__
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


def test_every_exported_name_resolves() -> None:
    assert [name for name in stepline.engine.__all__ if not hasattr(stepline.engine, name)] == []
