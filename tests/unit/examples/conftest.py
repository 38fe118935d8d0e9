"""The example services are imported as the packages `finance` and `manufacturing` from
examples/, as they run, and served on 127.0.0.1 for each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

Serve = Callable[[web.Application], Awaitable[str]]


def load_manifests(path: Path, *, namespace: str) -> list[dict[str, Any]]:
    """The objects of an example's YAML file, placed in `namespace` as `kubectl apply -n` would."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    return documents


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serves an application on an ephemeral loopback port; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
