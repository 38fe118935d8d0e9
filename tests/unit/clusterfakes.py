"""A cluster for the `stepline` commands in unit tests: `KubeApi.connect` answers with the fake a
test appends to the list `fake_connections` returns (none: no credentials, as with no
kubeconfig), and the kubeconfig's namespace is `namespace` unless -n says."""

from __future__ import annotations

from typing import Any

import pytest

from stepline import kube
from stepline.errors import ConfigurationError


def fake_connections(monkeypatch: pytest.MonkeyPatch, namespace: str) -> list[Any]:
    fakes: list[Any] = []

    async def connect(**kwargs: Any) -> Any:
        if not fakes:
            raise ConfigurationError("no Kubernetes credentials: not in a pod, and no kubeconfig")
        return fakes[0]

    monkeypatch.setattr(kube.KubeApi, "connect", connect)
    monkeypatch.setattr(kube, "default_namespace", lambda kubeconfig=None: namespace)
    return fakes
