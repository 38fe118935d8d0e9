"""Pydantic's JSON Schema of a model, turned into a structural OpenAPI v3 schema for a CRD.

Pure. Kubernetes accepts a narrower dialect than pydantic writes, so this module:

- inlines every `$ref` (a CRD schema has no `$defs`), the referring field's description winning
  over the referred model's docstring, and validation rules of both kept;
- drops the `anyOf: [X, {type: null}]` of optional fields (absence, not null, is how an object
  leaves a field unset) and turns `anyOf: [integer, string]` into `x-kubernetes-int-or-string`;
- writes defaults made by `default_factory` too (a nested model's in full: the API server
  validates a default as written, before nested defaults would fill it in), and `const` as a
  one-value `enum`;
- drops `title` and `additionalProperties: false` (unknown fields are pruned, or refused with
  `--validate=strict`), and refuses keywords it does not know rather than emit a schema the API
  server would reject or, worse, silently read differently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

Schema = dict[str, Any]

# Keywords passed through as they are (after their sub-schemas are converted).
_KEPT = frozenset(
    {
        "description", "type", "format", "enum", "default", "pattern", "minLength",
        "maxLength", "minimum", "maximum", "minItems", "maxItems", "minProperties",
        "maxProperties", "properties", "required", "items", "additionalProperties",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
        "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type", "exclusiveMinimum",
    }
)  # fmt: skip
_DROPPED = frozenset({"title"})
# The order keys are written in, so the YAML reads top-down: what it is, then its constraints.
_KEY_ORDER = ("description", "type", "format", "enum", "default")


class UnsupportedSchemaError(ValueError):
    """A model uses a JSON Schema construct that has no structural CRD equivalent."""


class _DefaultsFromFactories(GenerateJsonSchema):
    """Pydantic leaves `default_factory` defaults out of the schema; a CRD needs them."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return value


def build_structural_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of `model`, every reference inlined."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_DefaultsFromFactories)
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions, path=model.__name__)


def _convert(node: Schema, definitions: Schema, *, path: str) -> Schema:
    node = _resolve(node, definitions, path=path)
    unknown = set(node) - _KEPT - _DROPPED
    if node.get("x-kubernetes-int-or-string"):
        unknown.discard("anyOf")
    if unknown:
        raise UnsupportedSchemaError(f"{path}: unsupported JSON Schema keywords {sorted(unknown)}")
    converted: Schema = {}
    if isinstance(node.get("exclusiveMinimum"), int | float) and "minimum" not in node:
        # JSON Schema's `exclusiveMinimum: x` is OpenAPI v3.0's `minimum: x` with a flag.
        node = {**node, "minimum": node["exclusiveMinimum"], "exclusiveMinimum": True}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and not isinstance(value, dict):
            continue  # `false` from extra="forbid": pruning and strict validation do that job
        converted[key] = _convert_value(key, value, definitions, path=path)
    return _ordered(converted)


def _convert_value(key: str, value: Any, definitions: Schema, *, path: str) -> Any:
    if key == "properties":
        return {
            name: _convert(sub, definitions, path=f"{path}.{name}") for name, sub in value.items()
        }
    if key == "items":
        return _convert(value, definitions, path=f"{path}[]")
    if key == "additionalProperties":
        return _convert(value, definitions, path=f"{path}.*")
    if key == "x-kubernetes-validations":
        return [_ordered_rule(rule) for rule in value]
    return value


def _ordered_rule(rule: dict[str, str]) -> dict[str, str]:
    order = ("rule", "message", "fieldPath", "reason")
    return {key: rule[key] for key in order if key in rule}


def _resolve(node: Schema, definitions: Schema, *, path: str) -> Schema:
    """The node with `$ref`, `allOf` of one, `anyOf` and `const` rewritten away."""
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        node = _merge(_resolve(definitions[name], definitions, path=path), node)
    if "allOf" in node and len(node["allOf"]) == 1:
        (only,) = node.pop("allOf")
        node = _merge(_resolve(only, definitions, path=path), node)
    if "anyOf" in node:
        node = _resolve_any_of(node, definitions, path=path)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def _resolve_any_of(node: Schema, definitions: Schema, *, path: str) -> Schema:
    branches = [
        _resolve(branch, definitions, path=path)
        for branch in node.pop("anyOf")
        if branch != {"type": "null"}
    ]
    if len(branches) == 1:
        return _merge(branches[0], node)
    types = sorted(branch.get("type", "") for branch in branches)
    if types == ["integer", "string"]:
        # Kubernetes' own spelling of int-or-string (resource.Quantity, IntOrString).
        node.pop("x-kubernetes-int-or-string", None)
        node.pop("pattern", None)
        extras = {k: v for branch in branches for k, v in branch.items() if k != "type"}
        return {
            **node,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            **extras,
        }
    raise UnsupportedSchemaError(f"{path}: a union of {types} has no structural schema")


def _merge(base: Schema, override: Schema) -> Schema:
    """`base` with `override`'s keys; validation rules of both are kept."""
    merged = {**base, **override}
    rules = base.get("x-kubernetes-validations", []) + override.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _ordered(node: Schema) -> Schema:
    first = {key: node[key] for key in _KEY_ORDER if key in node}
    return {**first, **{key: value for key, value in node.items() if key not in first}}
