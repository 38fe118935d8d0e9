"""Where a step is called: the one place in the engine that knows.

Pure: no I/O. A deployed step is called at its Service's in-cluster URL
(`http://<name>.<namespace>.svc:<port><path>`), an external step at its `url`. An override map
replaces the scheme, host and port for local runs and tests — the demo runs the step programs as
local processes — keeping the step's own path:

    overrides = {"shop/user-validation": "http://127.0.0.1:9001", "order-processing": "http://127.0.0.1:9002"}

A key is `namespace/name` or a bare `name` (any namespace); the namespaced key wins. The base
URL may carry a path prefix, which comes before the step's path.

A deployed step without an override also has a route (`resolve_route`): its calls go to its
ready replicas directly when the balancer knows them, and to the Service URL otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from stepline.api import ServiceStep
from stepline.engine.balancing import Route
from stepline.resources import build_endpoint

NO_OVERRIDES: Mapping[str, str] = {}


def resolve_endpoint(step: ServiceStep, *, overrides: Mapping[str, str] = NO_OVERRIDES) -> str:
    """The URL a call to `step` is POSTed to."""
    if overrides:
        name = step.metadata.name or ""
        base = overrides.get(f"{step.metadata.namespace}/{name}") or overrides.get(name)
        if base is not None:
            return base.rstrip("/") + _path_of(step)
    return build_endpoint(step)


def resolve_route(
    step: ServiceStep, *, overrides: Mapping[str, str] = NO_OVERRIDES
) -> Route | None:
    """Where the replicas of a deployed step are, for calls balanced over them
    (`balancing.Balancer`); None for a `url` step and for one an override sends elsewhere."""
    name, namespace = step.metadata.name or "", step.metadata.namespace or ""
    if step.spec.url is not None or not name:
        return None
    if overrides and (f"{namespace}/{name}" in overrides or name in overrides):
        return None
    return Route(namespace=namespace, service=name, path=_path_of(step))


def _path_of(step: ServiceStep) -> str:
    """The path (and query) a call goes to, whichever host serves it."""
    if step.spec.url is None:
        return step.spec.resolved_path
    parts = urlsplit(step.spec.url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path
