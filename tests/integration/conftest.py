"""Fixtures for tests against the real local control plane.

`cluster` is started once per test run (hack/cluster-up.sh) and stopped at the end, or reused
when STEPLINE_TEST_KUBECONFIG names the kubeconfig of a running one. `namespace` is a fresh
namespace per test, deleted afterwards. A cluster that cannot start fails every test that needs
it, loudly, with what went wrong; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stepline.kube import KubeApi
from tests.integration.jaeger import JaegerServer
from tests.integration.localcluster import REPO, LocalCluster
from tests.integration.operatorprocess import OperatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    given = os.environ.get("STEPLINE_TEST_KUBECONFIG")
    local = LocalCluster.attach(given) if given else LocalCluster.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    readable = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{readable}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    """Stepline's CRDs, applied once per test run and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/servicesteps.stepline.io", "crd/workflows.stepline.io", "crd/workflowruns.stepline.io",
    )  # fmt: skip


@pytest.fixture
def operator(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`stepline run` watching this test's namespace; stopped (SIGTERM) after the test."""
    process = OperatorProcess(cluster, (namespace,), tmp_path / "operator.log").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    """A real Jaeger (in-memory, every port a free loopback one), needing no cluster.

    One for the whole run, as a real tracing backend is shared: tests tell their spans apart by
    trace id or by a service name of their own, and nothing restarts per test.
    """
    with JaegerServer(workdir=tmp_path_factory.mktemp("jaeger")) as server:
        yield server


@pytest.fixture
async def kube(cluster: LocalCluster) -> AsyncIterator[KubeApi]:
    """The operator's own API client on the test cluster, for tests that drive its loops."""
    api = await KubeApi.connect(
        field_manager="stepline-test", timeout=30, kubeconfig=str(cluster.kubeconfig)
    )
    try:
        yield api
    finally:
        await api.close()
