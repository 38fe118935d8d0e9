"""Fixtures of the web view's tests: the real `Authorizer` over a fake reviewer (a reader of
namespace shop by default) on a fake clock, a fake catalog with the finance and manufacturing
examples, and the `UiApp` over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from stepline.gateway.authorizing import Authorizer
from stepline.kube import KubeApi
from stepline.ui.app import UiApp
from stepline.ui.live import RunFeed
from tests.unit.gateway.reviewers import Clock
from tests.unit.ui.cluster import (
    NOW,
    READER,
    Reviewer,
    Runs,
    UserKube,
    build_catalog,
    example_workflow,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer() -> Reviewer:
    return Reviewer(*READER)


@pytest.fixture
def authorizer(reviewer: Reviewer, clock: Clock) -> Authorizer:
    return Authorizer(reviewer, allowed_ttl=10, denied_ttl=2, clock=clock)


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def feed(clock: Clock) -> RunFeed:
    return RunFeed(clock=clock)


@pytest.fixture
def kube() -> UserKube:
    return UserKube()


@pytest.fixture
def make_app(
    runs: Runs, feed: RunFeed, authorizer: Authorizer, kube: UserKube
) -> Callable[..., UiApp]:
    """A UiApp over the examples; keywords go to `build_catalog` (`authorizer=None`: no
    sign-in)."""

    def make(*, authorizer_: Authorizer | None = authorizer, **catalog: Any) -> UiApp:
        catalog.setdefault("workflows", [example_workflow("finance"),
                                         example_workflow("manufacturing")])  # fmt: skip
        built = build_catalog(runs, feed=feed, **catalog)
        return UiApp(built, authorizer=authorizer_, kube=cast(KubeApi, kube), clock=lambda: NOW)

    return make


@pytest.fixture
def app(make_app: Callable[..., UiApp]) -> UiApp:
    return make_app()
