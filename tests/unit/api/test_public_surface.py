"""The names users import from stepline.api: sorted, complete and all resolvable."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import stepline.api
from stepline.api.base import ApiModel


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions — the order ruff's RUF022 keeps too."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_is_sorted_without_duplicates() -> None:
    names = stepline.api.__all__
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


def test_every_exported_name_resolves() -> None:
    missing = [name for name in stepline.api.__all__ if not hasattr(stepline.api, name)]
    assert missing == []


def test_every_kind_and_its_spec_and_status_are_exported() -> None:
    for kind in stepline.api.KINDS:
        fields = kind.model_fields
        for model in (kind, fields["spec"].annotation, fields["status"].annotation):
            assert isinstance(model, type)
            assert model.__name__ in stepline.api.__all__


def test_the_api_package_imports_nothing_else_of_stepline() -> None:
    for module_info in pkgutil.iter_modules(stepline.api.__path__):
        module = importlib.import_module(f"stepline.api.{module_info.name}")
        source = inspect.getsource(module)
        foreign = [
            line
            for line in source.splitlines()
            if line.startswith(("from stepline", "import stepline"))
            and not line.startswith(("from stepline.api", "import stepline.api"))
        ]
        assert foreign == [], module.__name__


def test_every_model_field_has_a_description() -> None:
    undocumented = []
    for module_info in pkgutil.iter_modules(stepline.api.__path__):
        module = importlib.import_module(f"stepline.api.{module_info.name}")
        for _, model in inspect.getmembers(module, inspect.isclass):
            if not issubclass(model, ApiModel) or model.__module__ != module.__name__:
                continue
            if module_info.name == "base":
                continue  # the envelope: metadata is Kubernetes', not ours to describe
            undocumented += [
                f"{model.__name__}.{name}"
                for name, info in model.model_fields.items()
                if not info.description and name not in {"kind", "api_version", "metadata"}
            ]
    assert undocumented == []
