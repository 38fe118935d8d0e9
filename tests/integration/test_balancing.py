"""Calls spread over a step's ready replicas, on the real control plane.

The local cluster gives kwok's pods addresses local to this machine (hack/cluster-up.sh:
198.18.0.0/16 routed to lo), so a real step process started on a pod's address and the step's
port is that replica: the EndpointSlice controller lists the pods of the step's Service, the
operator follows the slices, and its calls reach the processes directly. The operator runs
without endpoint overrides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess, free_port
from tests.integration.stepobjects import merge_patch, service_step, wait_ready, workflow
from tests.integration.stepservices import ThreadedStepServer, invoker_token, post_invoke

pytestmark = pytest.mark.integration

STEP = "spread"
PATH = "/spread"
# Calls over which the shares are measured: with calls that end at once, the picks are close to
# uniform draws, so a share's standard deviation is about 0.027 and ±10 points is 3.7 of them.
SPREAD_CALLS = 300


class Replicas:
    """One step process per pod of the step, on the pod's address, started as pods appear."""

    def __init__(self, cluster: LocalCluster, namespace: str, port: int) -> None:
        self._cluster, self._namespace, self._port = cluster, namespace, port
        self.servers: dict[str, ThreadedStepServer] = {}  # pod IP → its process

    def ready_pod_ips(self) -> list[str]:
        pods = self._cluster.get_json(
            "pods", "-n", self._namespace, "-l", f"stepline.io/step={STEP}"
        )
        return sorted(
            pod["status"]["podIP"]
            for pod in pods["items"]
            if pod["status"].get("podIP") and not pod["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod["status"].get("conditions") or [])
        )  # fmt: skip

    def serve(self, count: int) -> list[str]:
        """Waits for `count` ready pods and serves each; returns their addresses."""
        ips = wait_until(
            lambda: (found := self.ready_pod_ips()) and len(found) == count and found,
            timeout=30, what=f"{count} ready pods of {STEP}",
        )  # fmt: skip
        for ip in ips:
            if ip not in self.servers:
                where = f"kwok gave pod address {ip}: see POD_ADDRESSES in hack/cluster-up.sh"
                assert ip.startswith("198.18."), where
                self.servers[ip] = ThreadedStepServer(host=ip, port=self._port).start()
        return ips

    def calls(self, ip: str) -> int:
        return len(self.servers[ip].calls(PATH))

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture
def replicas(cluster: LocalCluster, namespace: str) -> Iterator[Replicas]:
    found = Replicas(cluster, namespace, free_port())
    try:
        yield found
    finally:
        found.stop()


def ready_in_slices(cluster: LocalCluster, namespace: str) -> list[str]:
    slices = cluster.get_json(
        "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={STEP}"
    )["items"]
    return sorted(
        address
        for found in slices
        for endpoint in found.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for address in endpoint["addresses"][:1]
    )


def invoke_many(
    operator: OperatorProcess, namespace: str, count: int, *, token: str, clients: int = 4
) -> None:
    def one(_: int) -> int:
        status, answer = post_invoke(operator.base_url, namespace, "fan", b'{"n": 1}', token=token)
        assert status == 200, answer
        return status

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))


def test_calls_reach_every_ready_replica_and_a_new_one_within_seconds(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, replicas: Replicas
) -> None:
    cluster.apply(
        service_step(STEP, namespace, image="stepline/echo:0.1.0", port=replicas._port, path=PATH,
                     scaling={"minReplicas": 1, "maxReplicas": 5})
    )  # fmt: skip
    cluster.apply(workflow("fan", namespace, [{"name": "call", "stepRef": STEP}]))
    wait_ready(cluster, "servicestep", STEP, namespace)
    wait_ready(cluster, "workflow", "fan", namespace)
    (first,) = replicas.serve(1)
    token = invoker_token(cluster, namespace)
    invoke_many(operator, namespace, 20, token=token)
    assert replicas.calls(first) == 20, operator.log_tail()

    merge_patch(cluster, "servicestep", STEP, namespace, {"spec": {"scaling": {"minReplicas": 3}}})
    ips = replicas.serve(3)
    added = [ip for ip in ips if ip != first]
    started = time.monotonic()
    # Calls keep coming; each added replica gets its first within seconds of being served.
    while not all(replicas.calls(ip) for ip in added):
        assert time.monotonic() - started < 10, {ip: replicas.calls(ip) for ip in ips}
        invoke_many(operator, namespace, 8, token=token)
    first_calls_after = time.monotonic() - started
    before = {ip: replicas.calls(ip) for ip in ips}
    invoke_many(operator, namespace, SPREAD_CALLS, token=token, clients=6)
    shares = {ip: (replicas.calls(ip) - before[ip]) / SPREAD_CALLS for ip in ips}
    print(f"added replicas' first calls {first_calls_after:.2f} s after they were served; shares")
    print(json.dumps(shares))  # bench/elastic/RESULTS.md records these
    assert all(0.23 <= share <= 0.43 for share in shares.values()), json.dumps(shares)

    # Replicas that go away get no more calls: back to one.
    scaling = {"minReplicas": 1, "maxReplicas": 1}
    merge_patch(cluster, "servicestep", STEP, namespace, {"spec": {"scaling": scaling}})
    (kept,) = replicas.serve(1)
    wait_until(lambda: ready_in_slices(cluster, namespace) == [kept], timeout=30,
               what="the step's slices listing one ready endpoint")  # fmt: skip
    time.sleep(1)  # the slice's last update reaching the operator's watch
    before = {ip: replicas.calls(ip) for ip in ips}
    invoke_many(operator, namespace, 20, token=token)
    gone = [ip for ip in ips if ip != kept]
    assert [replicas.calls(ip) - before[ip] for ip in gone] == [0, 0]
    assert replicas.calls(kept) - before[kept] == 20
