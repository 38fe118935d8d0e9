"""The suite on real pods runs against a kind cluster made by hack/e2e.sh, which builds the
images, creates the cluster, loads the images and installs metrics-server, then names the
cluster's kubeconfig in STEPLINE_E2E_KUBECONFIG. Run without it, every test fails saying so.

A failed test gets a "cluster diagnostics" section: pods, warnings, the description of every pod
that is not Ready and the operator's log (tests/e2e/realpods.py).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from tests.e2e.realpods import diagnostics
from tests.integration.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

_attached: list[LocalCluster] = []


@pytest.fixture(scope="session")
def kind() -> LocalCluster:
    given = os.environ.get("STEPLINE_E2E_KUBECONFIG")
    if not given:
        pytest.fail(
            "the real-pods suite needs the kind cluster hack/e2e.sh makes: run `hack/e2e.sh`"
            " (or `make e2e`), not pytest tests/e2e directly",
            pytrace=False,
        )
    cluster = LocalCluster.attach(given)
    _attached.append(cluster)
    return cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _attached and call.when in {"setup", "call"}:
        try:
            report.sections.append(("cluster diagnostics", diagnostics(_attached[0])))
        except Exception as failure:  # the test's own failure matters more
            report.sections.append(("cluster diagnostics", f"could not gather: {failure!r}"))
