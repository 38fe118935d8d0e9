"""What every Stepline API model shares: wire naming, CEL rules and the object envelope.

Purely declarative; no I/O. Models are camelCase on the wire and snake_case in Python. Specs
forbid unknown fields (a typo must fail, as `kubectl apply --validate=strict` does); statuses and
metadata ignore them, because other writers and newer operators may add some.

Cross-field rules are written once, in CEL, as `Rule`s on the model that owns them. The CRD
generator copies them into `x-kubernetes-validations`, and the model evaluates the same text when
it validates, so the API server and the operator agree on what is valid. Transition rules (those
that mention `oldSelf`) compare an update with the stored object and run at the API server only.

Errors: `InvalidObjectError` (a `ValueError`) is raised by `from_body()` for a body that does not
fit its model; it names the kind, the object and each offending field, and chains pydantic's
`ValidationError`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from stepline.api.celbinding import cel

GROUP = "stepline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 label: Kubernetes' rule for most names (and for label values, which carry step names).
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# RFC 1035 label: a Service name, so the name of every ServiceStep (it names its Service).
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_LABEL_LENGTH = 63
# One expression is a line or a screenful; the bound keeps the API server's CEL cost estimates low.
MAX_EXPRESSION_LENGTH = 4096

StepName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_LENGTH, pattern=DNS1123_LABEL)
]
ServiceName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_LENGTH, pattern=DNS1035_LABEL)
]
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_LENGTH, pattern=DNS1123_LABEL)
]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION_LENGTH)]


class RuleReason(StrEnum):
    """The machine-readable reason the API server reports for a failed rule."""

    INVALID = "FieldValueInvalid"
    FORBIDDEN = "FieldValueForbidden"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"


@dataclass(frozen=True)
class Rule:
    """A CEL validation rule on the object of the model that declares it (`self`)."""

    rule: str
    message: str
    field_path: str | None = None
    reason: RuleReason | None = None

    @property
    def is_transition(self) -> bool:
        """Compares with the stored object, so only the API server can evaluate it."""
        return "oldSelf" in self.rule

    def as_schema(self) -> dict[str, str]:
        """The entry of `x-kubernetes-validations` for this rule."""
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason:
            entry["reason"] = self.reason.value
        return entry


def parse_timestamp(value: object) -> datetime | None:
    """An API timestamp (RFC 3339) read from a raw body; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def list_type(kind: str, *keys: str) -> dict[str, Any]:
    """Schema extras declaring how the API server merges and checks a list: `atomic` (one
    writer owns it), `set` (unique scalars) or `map` (unique by `keys`)."""
    extra: dict[str, Any] = {"x-kubernetes-list-type": kind}
    if keys:
        extra["x-kubernetes-list-map-keys"] = list(keys)
    return extra


class InvalidObjectError(ValueError):
    """A body that does not fit the model of its kind."""


@functools.cache
def _program(rule: str) -> cel.Program:
    return cel.compile(rule)


def _add_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """json_schema_extra hook: the model's rules become its `x-kubernetes-validations`."""
    rules = getattr(model, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.as_schema() for rule in rules]


# One set of field names per distinct set, shared by every model instance that has it
# (`ApiModel._share_fields_set`): a few dozen in practice, and never more than this many.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
MAX_SHARED_FIELDS_SETS = 4096


class ApiModel(BaseModel):
    """A part of an API object: camelCase on the wire, snake_case in Python.

    pydantic gives every instance a set of the names of the fields its input set; an object the
    operator keeps is some 15 instances, and their sets were a fifth of its memory with 1,000
    ServiceSteps and 1,000 Workflows (bench/scale/RESULTS.md). Instances with the same names
    share one set. Nothing in Stepline reads it (no `exclude_unset`, no `model_fields_set`:
    `to_wire` leaves out what is None); an assignment to a field adds the name to the shared set,
    which changes nothing else.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_extra=_add_rules,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if not self.rules:
            return self
        wire = self.to_wire()
        for rule in self.rules:
            if rule.is_transition:
                continue
            try:
                holds = _program(rule.rule).execute({"self": wire}) is True
            except Exception as exc:  # an evaluation error fails the rule, as at the API server
                raise ValueError(f"{rule.message} (rule error: {exc})") from exc
            if not holds:
                where = f"{rule.field_path.lstrip('.')}: " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        fields = self.__pydantic_fields_set__
        shared = _FIELDS_SETS.get(key := frozenset(fields))
        if shared is None and len(_FIELDS_SETS) < MAX_SHARED_FIELDS_SETS:
            shared = _FIELDS_SETS[key] = fields
        if shared is not None:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self

    @model_validator(mode="after")
    def _check_list_types(self) -> Self:
        """`set` and `map` lists hold no duplicates, as the API server enforces."""
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            value = getattr(self, name)
            if not isinstance(extra, dict) or not isinstance(value, list):
                continue
            if extra.get("x-kubernetes-list-type") == "set":
                keys: list[Any] = list(value)
            elif isinstance(fields := extra.get("x-kubernetes-list-map-keys"), list):
                keys = ["/".join(str(item.to_wire().get(str(k))) for k in fields) for item in value]
            else:
                continue
            repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
            if repeated:
                raise ValueError(f"{info.alias or name}: duplicate entries {', '.join(repeated)}")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON object as the API server stores it: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(ApiModel):
    """A part of a spec: unknown fields are errors, as at the API server with strict validation."""

    model_config = ConfigDict(extra="forbid")


class ObjectMeta(ApiModel):
    """The parts of Kubernetes' ObjectMeta that Stepline reads."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get` for a kind."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None


@dataclass(frozen=True)
class KindInfo:
    """How a kind appears in its CRD: names and `kubectl get` columns."""

    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = ("stepline",)


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists: kopf hands out read-only mapping views."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def describe_validation_error(error: ValidationError) -> str:
    """`spec.image: String should match pattern …; spec.port: …` — one line for a condition."""
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "(object)"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


class KubeObject(ApiModel):
    """A whole object of one of Stepline's kinds, as kopf hands it to a handler.

    Its `rules` (on the whole object) may read `self.metadata.name`, the one part of metadata a
    CRD may constrain.
    """

    kind_info: ClassVar[KindInfo]

    api_version: str = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parses a kopf body (or any dict); raises `InvalidObjectError` naming the fields.

        The body is validated as the JSON it is, strictly: `"80"` is not a port and `"yes"` is
        not a boolean, exactly as at the API server.
        """
        try:
            return cls.model_validate_json(json.dumps(_plain(body)), strict=True)
        except ValidationError as exc:
            metadata = body.get("metadata") or {}
            where = "/".join(filter(None, [metadata.get("namespace"), metadata.get("name")]))
            problems = describe_validation_error(exc)
            raise InvalidObjectError(f"{cls.__name__} {where or '(unnamed)'}: {problems}") from exc
