"""A stand-in for `kube.KubeApi` holding objects in memory: the calls the terminal commands make
(get, create, list_page, watch, merge_patch), answered as the API server would."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from stepline.errors import KubeApiError, KubeConflictError

Key = tuple[str, str, str]  # kind, namespace, name


class FakeKube:
    server = "https://127.0.0.1:6443"

    def __init__(
        self,
        *objects: Mapping[str, Any],
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
        then: BaseException | None = None,
    ) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        for obj in objects:
            self.put(obj)
        self.events = list(events)  # what a watch yields, then it raises `then`, if any
        self.then = then
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str, Mapping[str, Any]]] = []
        self.watches: list[dict[str, Any]] = []
        self._versions = itertools.count(100)

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        self.objects[(stored["kind"], meta["namespace"], meta["name"])] = stored
        return stored

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(manifest))
        meta = body["metadata"]
        if "name" not in meta:
            meta["name"] = meta["generateName"] + "x7k2p"
        if (body["kind"], meta["namespace"], meta["name"]) in self.objects:
            raise KubeConflictError(f"{meta['name']} already exists", status=409)
        meta["resourceVersion"] = str(next(self._versions))
        self.created.append(copy.deepcopy(body))
        return self.put(body)

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        if (kind, namespace, name) not in self.objects:
            raise KubeApiError(f"PATCH {name}: 404 not found", status=404)
        self.patches.append((kind, name, patch))
        target = self.objects[(kind, namespace, name)]
        target.setdefault("spec", {}).update(patch.get("spec", {}))
        return copy.deepcopy(target)

    async def list_page(
        self, api_version: str, kind: str, namespace: str | None, *, continue_token: str | None
    ) -> dict[str, Any]:
        items = [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind and namespace in (None, ns)
        ]
        # Two pages, to read past the first.
        half = len(items) // 2
        if continue_token is None and half:
            return {"items": items[:half], "metadata": {"continue": "more"}}
        return {"items": items[half:], "metadata": {"resourceVersion": "99"}}

    async def watch(self, api_version: str, kind: str, namespace: str | None, **query: Any
                    ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
        self.watches.append({"namespace": namespace, **query})
        while self.events:
            kind_, body = self.events.pop(0)
            yield {"type": kind_, "object": copy.deepcopy(dict(body))}
        if self.then is not None:
            raise self.then

    async def close(self) -> None:
        pass
