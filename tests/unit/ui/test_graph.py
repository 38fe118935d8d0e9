"""`stepline.ui.graph`: a Workflow's steps laid out in rows (each on the row after the last step
it waits for) and drawn as SVG with a node per step and an edge per dependency, every name and
expression escaped."""

from __future__ import annotations

import re

from stepline.terminal.graphs import Graph, GraphStep, graph_of
from stepline.ui.graph import draw, levels, replicas_from
from tests.unit.ui.cluster import example_workflow, workflow


def no_replicas(name: str) -> str | None:
    return None


def nodes(svg: str) -> list[str]:
    return re.findall(r'data-node="([^"]*)"', svg)


def edges(svg: str) -> list[str]:
    return re.findall(r'data-edge="([^"]*)"', svg)


DIAMOND = workflow(
    "city",
    {"name": "split", "stepRef": "splitter", "dependsOn": []},
    {"name": "traffic", "stepRef": "traffic-flow", "dependsOn": ["split"]},
    {"name": "air", "stepRef": "air-quality", "dependsOn": ["split"]},
    {"name": "report", "stepRef": "city-report", "dependsOn": ["traffic", "air"]},
    {"name": "archive", "stepRef": "archiver", "dependsOn": ["split", "report"]},
)


def test_a_chain_puts_each_step_on_the_row_after_the_one_before() -> None:
    assert levels(graph_of(example_workflow("finance"))) == {
        "validation": 0,
        "order": 1,
        "settlement": 2,
    }


def test_a_fan_out_shares_a_row_and_a_fan_in_goes_below_the_deepest_it_waits_for() -> None:
    assert levels(graph_of(DIAMOND)) == {
        "split": 0, "traffic": 1, "air": 1, "report": 2, "archive": 3,
    }  # fmt: skip


def test_steps_that_start_with_the_run_are_all_on_the_first_row() -> None:
    parallel = workflow(
        "city",
        {"name": "a", "stepRef": "a", "dependsOn": []},
        {"name": "b", "stepRef": "b", "dependsOn": []},
    )
    assert levels(graph_of(parallel)) == {"a": 0, "b": 0}


def test_under_a_cycle_a_step_waits_only_on_those_drawn_before_it() -> None:
    cyclic = graph_of(
        workflow(
            "loop",
            {"name": "a", "stepRef": "a", "dependsOn": ["c"]},
            {"name": "b", "stepRef": "b", "dependsOn": ["a"]},
            {"name": "c", "stepRef": "c", "dependsOn": ["b"]},
        )
    )

    assert cyclic.note is not None
    assert levels(cyclic) == {"a": 0, "b": 1, "c": 2}
    assert sorted(edges(draw(cyclic, no_replicas))) == ["a-&gt;b", "b-&gt;c", "c-&gt;a"]


def test_the_drawing_has_one_node_per_step_and_one_edge_per_dependency() -> None:
    svg = draw(graph_of(DIAMOND), no_replicas)

    assert nodes(svg) == ["split", "traffic", "air", "report", "archive"]
    assert sorted(edges(svg)) == sorted(
        f"{source}-&gt;{target}"
        for source, target in [
            ("split", "traffic"), ("split", "air"), ("traffic", "report"), ("air", "report"),
            ("split", "archive"), ("report", "archive"),
        ]
    )  # fmt: skip


def test_the_drawing_is_as_wide_as_the_widest_row_and_as_tall_as_the_rows() -> None:
    chain = draw(graph_of(example_workflow("manufacturing")), no_replicas)
    diamond = draw(graph_of(DIAMOND), no_replicas)

    # margins of 12, boxes of 240 x 110, gaps of 32 across and 56 down
    assert 'viewBox="0 0 264 466"' in chain  # one column, three rows
    assert 'viewBox="0 0 536 632"' in diamond  # two columns, four rows


def test_a_node_says_what_it_calls_its_replicas_condition_and_compensation() -> None:
    replicas = replicas_from({"user-validation": (2, 3), "order-processing": (None, 1)})

    svg = draw(graph_of(example_workflow("finance")), replicas)

    assert '<g class="node step" data-node="validation">' in svg
    assert "replicas 2/3" in svg
    assert "replicas 0/1" in svg
    assert "replicas unknown" in svg  # trade-settlement: not known
    assert '<g class="node conditional" data-node="order">' in svg
    assert 'class="undo">undone by order-cancellation</text>' in svg  # shown, not only titled


def test_an_approval_step_is_drawn_as_a_person_deciding() -> None:
    svg = draw(
        graph_of(
            workflow(
                "release",
                {"name": "plan", "stepRef": "planner"},
                {"name": "sign-off", "approval": {"message": '"Release?"'}},
            )
        ),
        no_replicas,
    )

    assert '<g class="node approval" data-node="sign-off">' in svg
    assert "approval by a person" in svg
    assert edges(svg) == ["plan-&gt;sign-off"]


def test_replicas_are_ready_of_desired_and_unknown_when_neither_is_known() -> None:
    of = replicas_from({"a": (2, 3), "b": (None, 3), "c": (1, None), "d": (None, None)})

    assert [of(name) for name in "abcde"] == ["2/3", "0/3", "1/?", None, None]


def test_names_and_expressions_are_escaped_in_text_titles_and_attributes() -> None:
    hostile = '"><script>x</script>'
    graph = Graph(
        name=hostile,
        steps=(
            GraphStep(name=hostile, calls="svc", after=(), when=None, for_each=None,
                      approval=None, undone_by=None, undo_when=None),
            GraphStep(name="b", calls="<svc>", after=(hostile,), when='input.a < 3 && "&"',
                      for_each=None, approval=None, undone_by=None, undo_when=None),
        ),
        parallelism=1,
        note=None,
    )  # fmt: skip

    svg = draw(graph, lambda name: "<1/2>")

    assert "<script>" not in svg
    assert "<svc>" not in svg
    assert "<1/2>" not in svg
    assert 'data-node="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in svg
    assert 'data-edge="&quot;&gt;&lt;script&gt;x&lt;/script&gt;-&gt;b"' in svg
    assert "when input.a &lt; 3 &amp;&amp; &quot;&amp;&quot;" in svg


def test_a_long_line_is_cut_in_its_box_and_whole_in_its_title() -> None:
    long_when = "steps.validation.output.approved && input.order.quantity > 100"
    svg = draw(
        graph_of(workflow("w", {"name": "a", "stepRef": "a", "when": long_when})), no_replicas
    )

    title = re.search(r"<g [^>]*><title>([^<]*)</title>", svg)
    assert title is not None
    assert ">when steps.validation.output.ap…</text>" in svg  # LONGEST characters
    assert "input.order.quantity &gt; 100" in title.group(1)
