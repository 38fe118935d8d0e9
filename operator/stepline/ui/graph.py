"""A Workflow's graph as SVG, laid out on the server: each step on the row after the last step
it waits for, in plan order along the row; an arrow from each step to each that waits for it.
The steps and what each waits for are the command line's (`terminal.graphs.build_graph`: the
API's dependency rule and the engine's plan order), so the picture is what the operator runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stepline.terminal.graphs import Graph, GraphStep
from stepline.ui.html import Html, join, tag

WIDTH, HEIGHT = 240, 110  # of a step's box: its name and up to four lines
GAP_X, GAP_Y, MARGIN = 32, 56, 12
LINE = 18  # between text lines in a box
LONGEST = 32  # characters of a line in a box; its <title> has it whole

Replicas = Callable[[str], str | None]  # ServiceStep name → "ready/desired", None: not known


def levels(graph: Graph) -> dict[str, int]:
    """Each step's row: 0 without a step to wait for, else one past the lowest of those it
    waits for. Under a cycle (the graph's note) a step waits only on those drawn before it."""
    level: dict[str, int] = {}
    for step in graph.steps:
        before = [level[name] for name in step.after if name in level]
        level[step.name] = 1 + max(before) if before else 0
    return level


def draw(graph: Graph, replicas: Replicas) -> Html:
    row_of = levels(graph)
    columns: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for step in graph.steps:
        row = row_of[step.name]
        column = columns.get(row, 0)
        columns[row] = column + 1
        place[step.name] = (MARGIN + column * (WIDTH + GAP_X), MARGIN + row * (HEIGHT + GAP_Y))
    width = MARGIN * 2 + max(columns.values(), default=1) * (WIDTH + GAP_X) - GAP_X
    height = MARGIN * 2 + (max(row_of.values(), default=0) + 1) * (HEIGHT + GAP_Y) - GAP_Y
    edges = [
        _edge(source, step.name, place[source], place[step.name])
        for step in graph.steps
        for source in step.after
        if source in place
    ]
    nodes = [_node(step, place[step.name], replicas) for step in graph.steps]
    return tag(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {width} {height}",
            "width": width,
            "height": height,
            "role": "img",
            "aria-labelledby": "graph-title",
            "class": "graph",
        },
        tag("title", {"id": "graph-title"}, _summary(graph)),
        _ARROW,
        *edges,
        *nodes,
    )


_ARROW = Html(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
    'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker>'
    "</defs>"
)


def _summary(graph: Graph) -> str:
    order = ", ".join(
        f"{step.name} after {' and '.join(step.after)}" if step.after else f"{step.name} first"
        for step in graph.steps
    )
    return f"Workflow {graph.name}: {order}"


def _edge(source: str, target: str, start: tuple[int, int], end: tuple[int, int]) -> Html:
    x1, y1 = start[0] + WIDTH // 2, start[1] + HEIGHT
    x2, y2 = end[0] + WIDTH // 2, end[1]
    bend = (y2 - y1) // 2
    path = f"M {x1} {y1} C {x1} {y1 + bend}, {x2} {y2 - bend}, {x2} {y2 - 2}"
    return tag(
        "path",
        {
            "d": path,
            "class": "edge",
            "marker-end": "url(#arrow)",
            "data-edge": f"{source}->{target}",
        },
    )


def _node(step: GraphStep, at: tuple[int, int], replicas: Replicas) -> Html:
    x, y = at
    kind = "approval" if step.calls is None else "conditional" if step.when else "step"
    lines: list[tuple[str, str]] = []
    if step.calls is None:
        lines.append(("calls", "approval by a person"))
    else:
        lines.append(("calls", f"calls {step.calls}"))
        ready = replicas(step.calls)
        lines.append(("replicas", f"replicas {ready}" if ready else "replicas unknown"))
    if step.when:
        lines.append(("when", f"when {step.when}"))
    elif step.for_each:
        lines.append(("for-each", f"for each of {step.for_each}"))
    if step.undone_by:
        lines.append(("undo", f"undone by {step.undone_by}"))
    texts = [
        tag("text", {"x": x + 12, "y": y + 24, "class": "name"}, _short(step.name)),
        *(
            tag("text", {"x": x + 12, "y": y + 24 + LINE * (i + 1), "class": css}, _short(line))
            for i, (css, line) in enumerate(lines)
        ),
    ]
    whole = "; ".join([step.name, *(line for _, line in lines)])
    return tag(
        "g",
        {"class": f"node {kind}", "data-node": step.name},
        tag("title", None, whole),
        tag("rect", {"x": x, "y": y, "width": WIDTH, "height": HEIGHT, "rx": 8}),
        join(texts),
    )


def _short(line: str) -> str:
    return line if len(line) <= LONGEST else line[: LONGEST - 1] + "…"


def replicas_from(status: Mapping[str, tuple[int | None, int | None]]) -> Replicas:
    """A `Replicas` over (ready, desired) by ServiceStep name."""

    def of(name: str) -> str | None:
        ready, desired = status.get(name, (None, None))
        if ready is None and desired is None:
            return None
        return f"{ready or 0}/{desired if desired is not None else '?'}"

    return of
