"""The order of a workflow's steps: who waits for whom, and dependency cycles.

Pure functions of a `WorkflowSpec`. A step with `dependsOn` waits for exactly those steps; one
without waits for the step before it in the list (the first one for nobody), so a chain needs no
`dependsOn` at all and `dependsOn: []` starts a step with the run. Names that match no step are
ignored here: admission refuses them.

A cycle cannot be refused at admission (it needs a graph search, beyond what CEL's cost limits
allow for 50 steps), so the Workflow controller calls `find_dependency_cycles()` and reports what
it finds in the Ready condition (reason DependencyCycle).
"""

from __future__ import annotations

from collections.abc import Mapping

from stepline.api.workflows import WorkflowSpec


def compute_dependencies(spec: WorkflowSpec) -> dict[str, tuple[str, ...]]:
    """Step name → the names of the steps it waits for, in list order of the workflow."""
    names = [step.name for step in spec.steps]
    known = set(names)
    dependencies: dict[str, tuple[str, ...]] = {}
    for index, step in enumerate(spec.steps):
        if step.depends_on is not None:
            wanted = set(step.depends_on) & known
            dependencies[step.name] = tuple(name for name in names if name in wanted)
        else:
            dependencies[step.name] = (names[index - 1],) if index else ()
    return dependencies


def compute_waits(spec: WorkflowSpec) -> dict[str, frozenset[str]]:
    """Step name → every step it waits for, directly or through others (in a cycle, a step
    waits for itself too: the cycle is reported on its own)."""
    graph = compute_dependencies(spec)
    waits: dict[str, frozenset[str]] = {}
    for name in graph:
        seen: set[str] = set()
        frontier = list(graph[name])
        while frontier:
            step = frontier.pop()
            if step not in seen:
                seen.add(step)
                frontier.extend(graph[step])
        waits[name] = frozenset(seen)
    return waits


def find_dependency_cycles(spec: WorkflowSpec) -> list[tuple[str, ...]]:
    """Every cycle of waiting steps, as a path that returns to its start: ('a', 'b', 'a').

    One cycle is given per group of steps that wait on each other (a strongly connected
    component), starting at the group's first step in list order; groups are in list order too.
    """
    graph = compute_dependencies(spec)
    cycles = []
    for component in _strongly_connected(graph):
        start = component[0]
        if len(component) > 1 or start in graph[start]:
            cycles.append(_cycle_through(start, graph, set(component)))
    return cycles


def describe_cycles(cycles: list[tuple[str, ...]]) -> str:
    """'steps wait on each other in a cycle: a → b → a; c → c' — for a condition message."""
    paths = "; ".join(" → ".join(cycle) for cycle in cycles)
    return f"steps wait on each other in a cycle: {paths}"


def _strongly_connected(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with members in the graph's key order."""
    order = {name: position for position, name in enumerate(graph)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    components.append(_pop_component(node, stack, on_stack, order))
            elif successor not in index:
                index[successor] = low[successor] = len(index)
                stack.append(successor)
                on_stack.add(successor)
                work.append((successor, iter(graph[successor])))
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
    return sorted(components, key=lambda members: order[members[0]])


def _pop_component(
    node: str, stack: list[str], on_stack: set[str], order: Mapping[str, int]
) -> list[str]:
    members = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        members.append(member)
        if member == node:
            return sorted(members, key=order.__getitem__)


def _cycle_through(
    start: str, graph: Mapping[str, tuple[str, ...]], members: set[str]
) -> tuple[str, ...]:
    """The shortest path from `start` back to itself inside one component (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in graph[node]:
                if successor not in members or successor in came_from:
                    continue
                came_from[successor] = node
                if successor == start:
                    return _walk_back(start, came_from)
                following.append(successor)
        frontier = following
    raise AssertionError(f"{start!r} is in a component but on no cycle")  # pragma: no cover


def _walk_back(start: str, came_from: Mapping[str, str]) -> tuple[str, ...]:
    path = [start]
    node = came_from[start]
    while node != start:
        path.append(node)
        node = came_from[node]
    path.append(start)
    return tuple(reversed(path))
