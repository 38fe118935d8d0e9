"""`stepline graph`: a Workflow's steps in the operator's plan order with what each waits for (the
API's rule: no `dependsOn` waits for the step before, `dependsOn: []` starts with the run), its
condition, forEach, approval and compensation, as text, a mermaid flowchart or a dot digraph."""

from __future__ import annotations

from typing import Any

import pytest

from stepline.terminal.errors import RefusedError
from stepline.terminal.graphs import GraphFormat, render_graph


def workflow(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "city", "namespace": "town"},
        "spec": {"steps": list(steps), **spec},
    }


CITY = workflow(
    {"name": "traffic", "stepRef": "traffic-flow", "dependsOn": []},
    {"name": "air", "stepRef": "air-quality", "dependsOn": []},
    {"name": "report", "stepRef": "city-report", "dependsOn": ["traffic", "air"]},
    parallelism=3,
)


def test_a_list_without_depends_on_is_a_chain_each_step_after_the_one_before() -> None:
    chain = workflow({"name": "a", "stepRef": "a"}, {"name": "b", "stepRef": "b"},
                     {"name": "c", "stepRef": "c"})  # fmt: skip
    assert render_graph(chain) == (
        "Workflow city: 3 steps, at most 10 calls at once\n"
        "a  (calls a)\n"
        "    starts with the run\n"
        "b  (calls b)\n"
        "    after: a\n"
        "c  (calls c)\n"
        "    after: b\n"
    )


def test_a_parallel_join_is_a_mermaid_flowchart_with_an_edge_per_dependency() -> None:
    assert render_graph(CITY, fmt=GraphFormat.MERMAID) == (
        "flowchart TD\n"
        '    s_traffic["traffic<br/>traffic-flow"]\n'
        '    s_air["air<br/>air-quality"]\n'
        '    s_report["report<br/>city-report"]\n'
        "    s_traffic --> s_report\n"
        "    s_air --> s_report\n"
    )


def test_a_parallel_join_is_a_dot_digraph() -> None:
    assert render_graph(CITY, fmt=GraphFormat.DOT) == (
        'digraph "city" {\n'
        "    rankdir=TB;\n"
        "    node [shape=box];\n"
        '    "traffic" [label="traffic\\ntraffic-flow"];\n'
        '    "air" [label="air\\nair-quality"];\n'
        '    "report" [label="report\\ncity-report"];\n'
        '    "traffic" -> "report";\n'
        '    "air" -> "report";\n'
        "}\n"
    )


def test_steps_that_start_with_the_run_say_so_and_a_join_names_what_it_waits_for() -> None:
    text = render_graph(CITY)
    assert text.startswith("Workflow city: 3 steps, at most 3 calls at once\n")
    assert "traffic  (calls traffic-flow)\n    starts with the run\n" in text
    assert "report  (calls city-report)\n    after: traffic, air\n" in text


def test_a_step_depending_on_a_later_one_is_drawn_after_it_as_the_plan_runs_it() -> None:
    moved = workflow(
        {"name": "notify", "stepRef": "notify", "dependsOn": ["order"]},
        {"name": "order", "stepRef": "order", "dependsOn": []},
    )
    lines = render_graph(moved).splitlines()
    assert [line.split()[0] for line in lines if not line.startswith((" ", "Workflow"))] == [
        "order", "notify",
    ]  # fmt: skip


def test_conditions_for_each_approval_and_compensation_are_shown_on_their_steps() -> None:
    steps = workflow(
        {"name": "order", "stepRef": "order-processing",
         "compensation": {"stepRef": "order-cancellation",
                          "when": 'step.output.status == "accepted"'}},
        {"name": "stations", "stepRef": "station", "when": "size(input.stations) > 0",
         "forEach": {"items": "input.stations", "parallelism": 4}},
        {"name": "release", "approval": {"message": '"Release?"', "timeoutSeconds": 3600}},
    )  # fmt: skip
    text = render_graph(steps)
    assert (
        "order  (calls order-processing)\n"
        "    starts with the run\n"
        '    undone by: order-cancellation (when: step.output.status == "accepted")\n'
    ) in text
    assert (
        "stations  (calls station)\n"
        "    after: order\n"
        "    when: size(input.stations) > 0\n"
        "    for each: input.stations (4 at once)\n"
    ) in text
    assert (
        "release  (approval: a person decides)\n"
        "    after: stations\n"
        '    asks "Release?"; times out after 1h00m\n'
    ) in text


def test_mermaid_shapes_mark_approval_foreach_conditional_and_compensation() -> None:
    steps = workflow(
        {"name": "order", "stepRef": "order-processing",
         "compensation": {"stepRef": "order-cancellation"}},
        {"name": "stations", "stepRef": "station", "when": "input.n > 0",
         "forEach": {"items": "input.stations"}},
        {"name": "release", "approval": {}},
    )  # fmt: skip
    text = render_graph(steps, fmt=GraphFormat.MERMAID)
    assert '    s_release{{"release<br/>approval"}}\n' in text
    assert (
        '    s_stations[["stations<br/>station<br/>when: input.n #gt; 0'
        '<br/>for each: input.stations"]]\n'
    ) in text
    assert '    u_order[/"order-cancellation<br/>undoes order"/]\n' in text
    assert "    s_order -. undo .-> u_order\n" in text
    assert text.endswith(
        "    classDef conditional stroke-dasharray: 5 5\n    class s_stations conditional\n"
    )


def test_mermaid_labels_escape_quotes_and_ids_never_collide_with_keywords() -> None:
    steps = workflow({"name": "end", "stepRef": "finish", "when": 'input.x == "#1"'})
    text = render_graph(steps, fmt=GraphFormat.MERMAID)
    assert '    s_end["end<br/>finish<br/>when: input.x == #quot;#35;1#quot;"]\n' in text


def test_dot_labels_escape_quotes_and_backslashes() -> None:
    steps = workflow({"name": "a", "stepRef": "a", "when": 'input.p == "C:\\\\x"'})
    text = render_graph(steps, fmt=GraphFormat.DOT)
    assert '"a" [label="a\\na\\nwhen: input.p == \\"C:\\\\\\\\x\\"", style=dashed];' in text


def test_a_dependency_cycle_is_drawn_in_list_order_with_a_note_naming_it() -> None:
    cyclic = workflow(
        {"name": "a", "stepRef": "a", "dependsOn": ["b"]},
        {"name": "b", "stepRef": "b", "dependsOn": ["a"]},
    )
    text = render_graph(cyclic)
    assert "note: steps wait on each other in a cycle: a → b → a: no run of it starts" in text
    assert "%% steps wait on each other" in render_graph(cyclic, fmt=GraphFormat.MERMAID)


def test_a_body_that_is_no_workflow_is_refused() -> None:
    with pytest.raises(RefusedError, match="the Workflow cannot be read"):
        render_graph(workflow())
