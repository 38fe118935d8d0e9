"""A Workflow's steps and what each waits for, drawn three ways: `stepline graph`. Pure.

Who waits for whom is the API's rule (`api.compute_dependencies`: a step without `dependsOn`
waits for the one before it, `dependsOn: []` starts with the run) and the order is the engine's
plan order (`engine.planning.order_steps`), so the drawing is what the operator executes. A
step's condition (`when`), its `forEach`, an approval step and a compensation are shown on the
step; a compensation is also drawn as a node of its own, joined by a dashed edge.

- `text`: the steps in plan order, each with its lines indented under it (`after: a, b`);
- `mermaid`: a `flowchart TD` (conditional steps dashed, approval steps hexagons, forEach steps
  double-edged);
- `dot`: a Graphviz `digraph`, with the same shapes.

A workflow whose steps wait on each other in a cycle is drawn in list order, with a note naming
the cycle: the operator runs none of it, and the drawing shows why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stepline.api import (
    InvalidObjectError,
    Workflow,
    WorkflowStep,
    compute_dependencies,
    describe_cycles,
    find_dependency_cycles,
)
from stepline.engine.planning import order_steps
from stepline.terminal.durations import format_duration
from stepline.terminal.errors import RefusedError

# An expression longer than this is cut in a drawing; `kubectl get wf -o yaml` has it whole.
LABEL_EXPRESSION = 60


class GraphFormat(StrEnum):
    TEXT = "text"
    MERMAID = "mermaid"
    DOT = "dot"


@dataclass(frozen=True)
class GraphStep:
    """What a drawing says of one step."""

    name: str
    calls: str | None  # the ServiceStep; None for an approval step
    after: tuple[str, ...]
    when: str | None
    for_each: str | None  # "items (N at once)"
    approval: str | None  # "asks …, times out after …"
    undone_by: str | None  # the compensating ServiceStep
    undo_when: str | None


@dataclass(frozen=True)
class Graph:
    name: str
    steps: tuple[GraphStep, ...]
    parallelism: int
    note: str | None  # a dependency cycle, when there is one


def render_graph(workflow: Mapping[str, Any], *, fmt: GraphFormat = GraphFormat.TEXT) -> str:
    """The Workflow (its body, as the API server gives it) drawn in `fmt`."""
    renderers: dict[GraphFormat, Callable[[Graph], str]] = {
        GraphFormat.TEXT: render_text,
        GraphFormat.MERMAID: render_mermaid,
        GraphFormat.DOT: render_dot,
    }
    return renderers[fmt](build_graph(workflow))


def build_graph(workflow: Mapping[str, Any]) -> Graph:
    """The steps in plan order (list order under a cycle) with what each waits for."""
    try:
        parsed = Workflow.from_body(workflow)
    except InvalidObjectError as exc:
        raise RefusedError(f"the Workflow cannot be read: {exc}") from exc
    return graph_of(parsed)


def graph_of(parsed: Workflow) -> Graph:
    """The graph of a Workflow already read (the web view's, from the operator's index)."""
    spec = parsed.spec
    dependencies = compute_dependencies(spec)
    cycles = find_dependency_cycles(spec)
    order = list(dependencies) if cycles else order_steps(dependencies)
    by_name = {step.name: step for step in spec.steps}
    return Graph(
        name=parsed.metadata.name or "",
        steps=tuple(build_step(by_name[name], dependencies[name]) for name in order),
        parallelism=spec.parallelism,
        note=f"{describe_cycles(cycles)}: no run of it starts" if cycles else None,
    )


def build_step(step: WorkflowStep, after: tuple[str, ...]) -> GraphStep:
    for_each = None
    if step.for_each is not None:
        at_once = step.for_each.parallelism
        for_each = step.for_each.items + (f" ({at_once} at once)" if at_once else "")
    approval = None
    if step.approval is not None:
        asks = step.approval.message or repr(step.name)
        approval = f"asks {asks}; times out after {format_duration(step.approval.timeout_seconds)}"
    undo = step.compensation
    return GraphStep(
        name=step.name,
        calls=step.step_ref,
        after=after,
        when=step.when,
        for_each=for_each,
        approval=approval,
        undone_by=undo.step_ref if undo else None,
        undo_when=undo.when if undo else None,
    )


def render_text(graph: Graph) -> str:
    count, most = len(graph.steps), graph.parallelism
    lines = [f"Workflow {graph.name}: {count} steps, at most {most} calls at once"]
    if graph.note:
        lines.append(f"note: {graph.note}; listed in list order")
    for step in graph.steps:
        what = f"calls {step.calls}" if step.calls else "approval: a person decides"
        lines.append(f"{step.name}  ({what})")
        lines.append(
            "    " + (f"after: {', '.join(step.after)}" if step.after else "starts with the run")
        )
        lines += [f"    {line}" for line in describe_extras(step)]
    return "\n".join(lines) + "\n"


def describe_extras(step: GraphStep) -> list[str]:
    """The lines a step has beyond what it calls and waits for."""
    lines = []
    if step.when:
        lines.append(f"when: {step.when}")
    if step.for_each:
        lines.append(f"for each: {step.for_each}")
    if step.approval:
        lines.append(step.approval)
    if step.undone_by:
        condition = f" (when: {step.undo_when})" if step.undo_when else ""
        lines.append(f"undone by: {step.undone_by}{condition}")
    return lines


def render_mermaid(graph: Graph) -> str:
    lines = ["flowchart TD"]
    if graph.note:
        lines.append(f"    %% {graph.note}")
    for step in graph.steps:
        left, right = (
            ("{{", "}}") if step.calls is None else ("[[", "]]") if step.for_each else ("[", "]")
        )
        label = "<br/>".join(mermaid_text(part) for part in node_label(step))
        lines.append(f'    {mermaid_id(step.name)}{left}"{label}"{right}')
        if step.undone_by:
            undo = "<br/>".join(mermaid_text(part) for part in undo_label(step))
            lines.append(f'    {mermaid_id(step.name, undo=True)}[/"{undo}"/]')
    for step in graph.steps:
        lines += [f"    {mermaid_id(before)} --> {mermaid_id(step.name)}" for before in step.after]
        if step.undone_by:
            undo_id = mermaid_id(step.name, undo=True)
            lines.append(f"    {mermaid_id(step.name)} -. undo .-> {undo_id}")
    conditional = [mermaid_id(step.name) for step in graph.steps if step.when]
    if conditional:
        lines.append("    classDef conditional stroke-dasharray: 5 5")
        lines.append(f"    class {','.join(conditional)} conditional")
    return "\n".join(lines) + "\n"


def render_dot(graph: Graph) -> str:
    lines = [f"digraph {dot_text(graph.name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    if graph.note:
        lines.append(f"    // {graph.note}")
    for step in graph.steps:
        attributes = [f"label={dot_text(chr(10).join(node_label(step)))}"]
        if step.calls is None:
            attributes.append("shape=hexagon")
        elif step.for_each:
            attributes.append("peripheries=2")
        if step.when:
            attributes.append("style=dashed")
        lines.append(f"    {dot_text(step.name)} [{', '.join(attributes)}];")
        if step.undone_by:
            undo = dot_text(chr(10).join(undo_label(step)))
            lines.append(
                f"    {dot_text(step.name + ' (undo)')} [label={undo}, shape=parallelogram];"
            )
    for step in graph.steps:
        lines += [f"    {dot_text(before)} -> {dot_text(step.name)};" for before in step.after]
        if step.undone_by:
            target = dot_text(step.name + " (undo)")
            lines.append(f'    {dot_text(step.name)} -> {target} [style=dashed, label="undo"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def node_label(step: GraphStep) -> list[str]:
    """A node's lines: the name, what it calls, its condition and its list."""
    parts = [step.name, step.calls or "approval"]
    if step.when:
        parts.append(f"when: {shorten(step.when)}")
    if step.for_each:
        parts.append(f"for each: {shorten(step.for_each)}")
    return parts


def undo_label(step: GraphStep) -> list[str]:
    parts = [f"{step.undone_by}", f"undoes {step.name}"]
    if step.undo_when:
        parts.append(f"when: {shorten(step.undo_when)}")
    return parts


def shorten(expression: str) -> str:
    flat = " ".join(expression.split())
    return flat if len(flat) <= LABEL_EXPRESSION else flat[: LABEL_EXPRESSION - 1] + "…"


def mermaid_id(name: str, *, undo: bool = False) -> str:
    """A node id mermaid takes for any step name (`end` alone is a keyword there): `s_<name>`,
    or `u_<name>` for its compensation, with `-` as `_` (step names have no `_`)."""
    return ("u_" if undo else "s_") + name.replace("-", "_")


def mermaid_text(text: str) -> str:
    """Text inside a quoted mermaid label: its own syntax escaped as entity codes."""
    for character, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(character, code)
    return text


def dot_text(text: str) -> str:
    """A double-quoted DOT string; a newline in `text` becomes a line break of the label."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
