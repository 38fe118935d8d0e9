"""Who waits for whom in a workflow, and the cycles the controller must report."""

from __future__ import annotations

import itertools
from typing import Any

from stepline.api import WorkflowSpec, compute_dependencies, describe_cycles, find_dependency_cycles


def _spec(*steps: dict[str, Any]) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"steps": [{"stepRef": "svc", **step} for step in steps]})


def test_without_depends_on_each_step_waits_for_the_one_before() -> None:
    spec = _spec({"name": "a"}, {"name": "b"}, {"name": "c"})
    assert compute_dependencies(spec) == {"a": (), "b": ("a",), "c": ("b",)}
    assert find_dependency_cycles(spec) == []


def test_an_empty_depends_on_starts_a_step_with_the_run() -> None:
    spec = _spec(
        {"name": "a"}, {"name": "b", "dependsOn": []}, {"name": "c", "dependsOn": ["a", "b"]}
    )
    assert compute_dependencies(spec) == {"a": (), "b": (), "c": ("a", "b")}


def test_dependencies_are_listed_in_workflow_order_whatever_order_they_are_written_in() -> None:
    spec = _spec({"name": "a"}, {"name": "b"}, {"name": "c", "dependsOn": ["b", "a"]})
    assert compute_dependencies(spec)["c"] == ("a", "b")


def test_a_forward_dependency_closes_a_cycle_with_the_implicit_order() -> None:
    # b waits for c explicitly; c waits for b because it follows it and says nothing.
    spec = _spec({"name": "a"}, {"name": "b", "dependsOn": ["c"]}, {"name": "c"})
    assert find_dependency_cycles(spec) == [("b", "c", "b")]


def test_a_cycle_is_given_as_a_path_back_to_its_first_step() -> None:
    spec = _spec(
        {"name": "a", "dependsOn": ["c"]},
        {"name": "b", "dependsOn": ["a"]},
        {"name": "c", "dependsOn": ["b"]},
    )
    (cycle,) = find_dependency_cycles(spec)
    assert cycle[0] == cycle[-1] == "a"
    graph = compute_dependencies(spec)
    assert all(after in graph[before] for before, after in itertools.pairwise(cycle))


def test_separate_cycles_are_each_reported_in_workflow_order() -> None:
    spec = _spec(
        {"name": "x", "dependsOn": ["y"]},
        {"name": "y", "dependsOn": ["x"]},
        {"name": "free", "dependsOn": []},
        {"name": "p", "dependsOn": ["q"]},
        {"name": "q", "dependsOn": ["p"]},
    )
    assert find_dependency_cycles(spec) == [("x", "y", "x"), ("p", "q", "p")]


def test_a_step_that_waits_for_a_cycle_is_not_itself_reported() -> None:
    spec = _spec(
        {"name": "a", "dependsOn": ["b"]},
        {"name": "b", "dependsOn": ["a"]},
        {"name": "c", "dependsOn": ["a"]},
    )
    assert find_dependency_cycles(spec) == [("a", "b", "a")]


def test_a_diamond_is_not_a_cycle() -> None:
    spec = _spec(
        {"name": "start"},
        {"name": "left", "dependsOn": ["start"]},
        {"name": "right", "dependsOn": ["start"]},
        {"name": "join", "dependsOn": ["left", "right"]},
    )
    assert find_dependency_cycles(spec) == []


def test_a_long_chain_is_searched_without_recursion() -> None:
    steps = [{"name": f"s{i}"} for i in range(50)]
    steps[0] = {"name": "s0", "dependsOn": ["s49"]}
    cycles = find_dependency_cycles(_spec(*steps))
    assert len(cycles) == 1
    assert len(cycles[0]) == 51


def test_cycles_are_described_for_a_condition_message() -> None:
    assert describe_cycles([("a", "b", "a"), ("c", "d", "c")]) == (
        "steps wait on each other in a cycle: a → b → a; c → d → c"
    )
