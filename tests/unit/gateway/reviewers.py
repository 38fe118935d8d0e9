"""A stand-in for the API server's token and access reviews, for the gateway's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from stepline.errors import KubeApiError

TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-part.signature"
USER = {
    "username": "system:serviceaccount:shop:checkout",
    "uid": "7d1c",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:shop"],
    "extra": {"authentication.kubernetes.io/pod-name": ["checkout-1"]},
}
HEADER = f"Bearer {TOKEN}"


class Clock:
    """A monotonic clock the test moves by hand (`now`), for the authorizer's kept verdicts."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reviewer:
    """The API server's side: `tokens` it accepts (with the audiences each was issued for),
    `grants` of (username, namespace, name); `failing` answers every review with an error;
    `gate`, when set, holds every review until it is set."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
            TOKEN: (USER, ("https://kubernetes.default.svc",))
        }
        self.grants = {(USER["username"], "shop", "trade")}
        self.failing: KubeApiError | None = None
        self.gate: asyncio.Event | None = None
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def review(
        self, api_version: str, kind: str, spec: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        self.asked.append((kind, dict(spec)))
        if self.gate is not None:
            await self.gate.wait()
        if self.failing is not None:
            raise self.failing
        if kind == "TokenReview":
            return self._token_review(spec)
        attributes = spec["resourceAttributes"]
        wanted = (spec["user"], attributes["namespace"], attributes["name"])
        return {"allowed": attributes["verb"] == "invoke" and wanted in self.grants}

    def _token_review(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        user, issued_for = self.tokens.get(spec["token"], (None, ()))
        asked = spec.get("audiences") or ["https://kubernetes.default.svc"]
        common = [audience for audience in asked if audience in issued_for]
        if user is None or not common:
            return {"authenticated": False, "error": "invalid bearer token"}
        return {"authenticated": True, "user": user, "audiences": common}

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.asked]
