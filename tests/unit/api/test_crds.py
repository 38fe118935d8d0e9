"""The CRDs: generated from the models, committed unchanged, structural, and in agreement with
the models on defaults."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepline.api import (
    KINDS,
    ServiceStep,
    ServiceStepSpec,
    WorkflowRunSpec,
    WorkflowSpec,
    build_crd,
    find_crd_drift,
)
from stepline.api.base import ApiModel
from stepline.cli import main

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
Schema = dict[str, Any]


def admission_out(tmp_path: Path) -> list[str]:
    """`stepline crds` writes the Approval's admission policies too: here, not in the repository."""
    return ["--admission-out", str(tmp_path / "admission")]


def _spec_schema(kind_name: str) -> Schema:
    crd = next(build_crd(kind) for kind in KINDS if kind.__name__ == kind_name)
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")


def _apply_defaults(schema: Schema, value: Any) -> Any:
    """Structural defaulting as the API server does it: missing fields take their default,
    then present objects and list items are defaulted in turn."""
    if isinstance(value, dict):
        result = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = _apply_defaults(sub, result[name])
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_apply_defaults(schema["items"], item) for item in value]
    return value


def test_the_committed_crds_are_what_the_models_generate() -> None:
    assert find_crd_drift(CRDS) == [], "run `stepline crds` and commit crds/"


def test_stepline_crds_writes_the_files_and_check_finds_no_drift(tmp_path: Path) -> None:
    assert main(["crds", "--out", str(tmp_path), *admission_out(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == sorted(p.name for p in CRDS.glob("*.yaml"))
    assert main(["crds", "--check", "--out", str(tmp_path), *admission_out(tmp_path)]) == 0


def test_stepline_crds_check_fails_on_an_edited_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["crds", "--out", str(tmp_path), *admission_out(tmp_path)])
    edited = tmp_path / "stepline.io_workflows.yaml"
    edited.write_text(edited.read_text().replace("maxItems: 50", "maxItems: 51"))
    assert main(["crds", "--check", "--out", str(tmp_path), *admission_out(tmp_path)]) == 1
    assert "stepline.io_workflows.yaml: differs from the models" in capsys.readouterr().err


def test_stepline_crds_check_fails_on_a_missing_file(tmp_path: Path) -> None:
    assert main(["crds", "--check", "--out", str(tmp_path), *admission_out(tmp_path)]) == 1


def test_every_kind_has_short_names_the_stepline_category_and_a_status_subresource() -> None:
    short = {}
    for kind in KINDS:
        crd = build_crd(kind)
        names = crd["spec"]["names"]
        short[names["kind"]] = names["shortNames"]
        assert names["categories"] == ["stepline"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"
    assert short == {
        "ServiceStep": ["sstep"],
        "Workflow": ["wf"],
        "WorkflowRun": ["wfrun"],
        "WorkflowSchedule": ["wfsched"],
        "Approval": ["appr"],
    }


@pytest.mark.parametrize("kind", [kind.__name__ for kind in KINDS])
def test_the_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(_spec_schema(kind)):
        assert not {"$ref", "$defs", "allOf", "oneOf", "nullable", "title"} & node.keys(), path
        assert "uniqueItems" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" in node, path
        if node.get("additionalProperties") is False:
            pytest.fail(f"{path}: additionalProperties false with properties")


@pytest.mark.parametrize("kind", [kind.__name__ for kind in KINDS])
def test_every_field_is_described(kind: str) -> None:
    for path, node in _nodes(_spec_schema(kind)):
        if path.startswith((".metadata", ".apiVersion", ".kind")) or path.endswith("*"):
            continue
        if path.endswith("[]") and node.get("type") != "object":
            continue  # a list of scalars is described by the list
        assert node.get("description"), f"{kind}{path} has no description"


@pytest.mark.parametrize("kind", [kind.__name__ for kind in KINDS])
def test_strings_and_lists_are_bounded_for_the_cel_cost_estimate(kind: str) -> None:
    for path, node in _nodes(_spec_schema(kind)):
        if path.startswith((".metadata", ".apiVersion", ".kind")):
            continue
        if node.get("type") == "string":
            assert "maxLength" in node or "enum" in node or "format" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_every_rule_has_a_message_and_a_known_reason() -> None:
    reasons = {
        "FieldValueInvalid",
        "FieldValueForbidden",
        "FieldValueRequired",
        "FieldValueDuplicate",
    }
    rules = [
        rule
        for kind in KINDS
        for _, node in _nodes(_spec_schema(kind.__name__))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 12
    for rule in rules:
        assert rule["rule"]
        assert rule["message"]
        assert rule.get("reason", "FieldValueInvalid") in reasons


@pytest.mark.parametrize(
    ("model", "kind", "minimal"),
    [
        (ServiceStepSpec, "ServiceStep", {"image": "x"}),
        (ServiceStepSpec, "ServiceStep", {"url": "http://x", "retry": {"limit": 5}}),
        (ServiceStepSpec, "ServiceStep", {"image": "x", "scaling": {}, "probes": {"liveness": {}}}),
        (WorkflowSpec, "Workflow", {"steps": [{"name": "a", "stepRef": "b", "retry": {}}]}),
        (WorkflowSpec, "Workflow", {"steps": [{"name": "a", "stepRef": "b"}], "retention": {}}),
        (WorkflowRunSpec, "WorkflowRun", {"workflowRef": "w"}),
    ],
    ids=["image-step", "url-step-with-partial-retry", "empty-nested-objects",
         "workflow-step-retry", "workflow-empty-retention", "run"],
)  # fmt: skip
def test_the_crd_defaults_a_spec_exactly_as_the_model_does(
    model: type[ApiModel], kind: str, minimal: dict[str, Any]
) -> None:
    spec_schema = _spec_schema(kind)["properties"]["spec"]
    assert _apply_defaults(spec_schema, minimal) == model.model_validate(minimal).to_wire()


def test_status_schemas_carry_no_defaults() -> None:
    for kind in KINDS:
        status = _spec_schema(kind.__name__)["properties"]["status"]
        assert [path for path, node in _nodes(status) if "default" in node] == []


def test_the_committed_yaml_parses_to_the_generated_manifest() -> None:
    for kind in KINDS:
        path = CRDS / f"stepline.io_{kind.kind_info.plural}.yaml"
        assert yaml.safe_load(path.read_text()) == build_crd(kind)


def test_the_service_step_name_rule_is_on_the_whole_object() -> None:
    rules = _spec_schema("ServiceStep")["x-kubernetes-validations"]
    assert [rule["fieldPath"] for rule in rules] == [".metadata.name"]
    assert ServiceStep.rules[0].as_schema() == rules[0]
