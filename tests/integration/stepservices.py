"""What the run and invoke tests share: real step services and a namespace set up once per module.

kwok simulates the steps' pods, so nothing listens at a step's in-cluster address. The steps are
served instead by the unit tests' programmable `StepServer` (tests/unit/engine/stepservers.py),
run here on an event loop of its own in a background thread, and the operator is started with
STEPLINE_ENDPOINT_OVERRIDES mapping every step to it. Each ServiceStep has its own `path`, so one
server plays every step and a test scripts a step by scripting its path.

`StepBed` is one namespace with those ServiceSteps deployed and Ready, the server, an operator
watching the namespace, and the token of a ServiceAccount there allowed to invoke its workflows
(invoke needs one, as users call it); a module builds it once, since a namespace, an operator
start and kwok pods turning Ready cost seconds each.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, Manifest, get, service_step, wait_ready
from tests.unit.engine.stepservers import Received, Script, StepServer

# Retries as fast as the API allows, so that the retry tests take milliseconds, not seconds.
QUICK_RETRY = {"limit": 2, "backoff": {"initialSeconds": 0.05, "factor": 1, "maxSeconds": 0.05}}
STEP_TIMEOUT_SECONDS = 2
FINISHED_PHASES = ("Succeeded", "Failed", "Cancelled")


class ThreadedStepServer:
    """A `StepServer` serving from a thread, so that tests written without asyncio can use it
    while the operator (another process) calls it."""

    def __init__(self, *, host: str | None = None, port: int = 0) -> None:
        self.server = StepServer(port=port) if host is None else StepServer(port=port, host=host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedStepServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shut_down(self) -> None:
        await self.server.stop()
        # Handlers still sleeping (answers scripted to be late) would outlive the loop.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def answer(self, path: str, *answers: Script) -> None:
        """Scripts `path` (see StepServer.answer); set before the calls it answers."""
        self.server.answer(path, *answers)

    def calls(self, path: str, *, run_uid: str | None = None) -> list[Received]:
        """The requests `path` received; with `run_uid`, those of that run only."""
        received = list(self.server.received)  # a copy: the server thread appends
        return [
            r
            for r in received
            if r.path == path
            and (run_uid is None or r.headers.get("Idempotency-Key", "").startswith(f"{run_uid}/"))
        ]


@dataclass
class StepBed:
    cluster: LocalCluster
    namespace: str
    server: ThreadedStepServer
    operator: OperatorProcess
    token: str = ""  # a bearer token allowed to invoke the namespace's workflows


def add_caller(
    cluster: LocalCluster, namespace: str, name: str, *, workflows: Sequence[str] | None = ()
) -> None:
    """A ServiceAccount `name` in `namespace`. With `workflows` (not None), a Role granting the
    verb `invoke` on those Workflows (empty: every one in the namespace) and its RoleBinding to
    the account, as a user grants it (the chart ships the rule as ClusterRole <name>-invoker)."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    if workflows is None:
        cluster.apply(account)
        return
    rule: Manifest = {"apiGroups": ["stepline.io"], "resources": ["workflows"], "verbs": ["invoke"]}
    if workflows:
        rule["resourceNames"] = list(workflows)
    meta = {"name": f"{name}-invokes", "namespace": namespace}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [rule]}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    cluster.apply([account, role, binding])


def account_token(
    cluster: LocalCluster, namespace: str, name: str, *, audience: str | None = None
) -> str:
    """A token of the ServiceAccount from the TokenRequest API (`kubectl create token`), for the
    API server's audience or `audience`."""
    args = ["create", "token", name, "-n", namespace, "--duration=1h"]
    if audience is not None:
        args.append(f"--audience={audience}")
    return cluster.kubectl(*args).stdout.strip()


def invoker_token(cluster: LocalCluster, namespace: str) -> str:
    """The token of a ServiceAccount `invoker` allowed to invoke every workflow in `namespace`."""
    add_caller(cluster, namespace, "invoker")
    return account_token(cluster, namespace, "invoker")


def open_step_bed(
    cluster: LocalCluster,
    label: str,
    steps: Sequence[str],
    log_dir: Path,
    *,
    scaling: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
    elsewhere: dict[str, str] | None = None,
) -> StepBed:
    """A new namespace with a ServiceStep per name in `steps` (path `/<name>`), all Ready, the
    step server and an operator that calls the steps there (with `extra_env`), but for the
    steps `elsewhere` maps to another base URL (a real example service, say). `scaling` maps
    a step to its `spec.scaling`. Close it with `close_step_bed`."""
    namespace = f"t-{label}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    server = ThreadedStepServer().start()
    spec = {"timeoutSeconds": STEP_TIMEOUT_SECONDS, "retry": QUICK_RETRY}
    cluster.apply(
        [
            service_step(
                name,
                namespace,
                image="stepline/echo:0.1.0",
                path=f"/{name}",
                **spec,
                **({"scaling": scaling[name]} if scaling and name in scaling else {}),
            )
            for name in steps
        ]
    )
    overrides = {
        f"{namespace}/{name}": (elsewhere or {}).get(name, server.base_url) for name in steps
    }
    operator = OperatorProcess(
        cluster, (namespace,), log_dir / f"operator-{namespace}.log",
        extra_env={"STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides), **(extra_env or {})},
    )  # fmt: skip
    bed = StepBed(cluster, namespace, server, operator, invoker_token(cluster, namespace))
    try:
        operator.start()
        for name in steps:
            wait_ready_step(bed, name)
    except BaseException:
        close_step_bed(bed)
        raise
    return bed


def wait_ready_step(bed: StepBed, name: str) -> None:
    """Waits for the ServiceStep to be Ready; on a timeout says what its Deployment reports, to
    tell a slow pod from a status that missed the Deployment's last change."""
    try:
        wait_ready(bed.cluster, "servicestep", name, bed.namespace)
    except AssertionError as exc:
        deployment = get(bed.cluster, "deployment", name, bed.namespace) or {}
        available = (deployment.get("status") or {}).get("availableReplicas")
        raise AssertionError(
            f"{exc}; its Deployment reports availableReplicas={available}"
        ) from exc


def module_step_bed(label: str, steps: Sequence[str]) -> Any:
    """A module-scoped `bed` fixture: `open_step_bed` for the module's tests, closed after
    them (`bed = module_step_bed("runs", STEPS)` in the test module)."""

    @pytest.fixture(scope="module")
    def bed(
        cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[StepBed]:
        opened = open_step_bed(cluster, label, steps, tmp_path_factory.mktemp(label))
        try:
            yield opened
        finally:
            close_step_bed(opened)

    return bed


def close_step_bed(bed: StepBed) -> None:
    bed.operator.stop()
    bed.server.stop()
    bed.cluster.kubectl("delete", "namespace", bed.namespace, "--wait=false", check=False)


def apply_workflow(bed: StepBed, name: str, steps: list[Manifest], **spec: Any) -> Manifest:
    """Applies a Workflow and waits until it is Ready; returns it."""
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": bed.namespace},
        "spec": {"steps": steps, **spec},
    }
    bed.cluster.apply(manifest)
    return wait_ready(bed.cluster, "workflow", name, bed.namespace)


def start_run(bed: StepBed, name: str, workflow: str, run_input: Any) -> str:
    """Creates a WorkflowRun; returns its uid (the prefix of its calls' Idempotency-Keys)."""
    bed.cluster.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": bed.namespace},
            "spec": {"workflowRef": workflow, "input": run_input},
        }
    )
    run = get(bed.cluster, "workflowrun", name, bed.namespace)
    assert run is not None
    uid: str = run["metadata"]["uid"]
    return uid


def wait_finished(bed: StepBed, name: str, *, timeout: float = 30) -> Manifest:
    """Waits for the run to reach Succeeded, Failed or Cancelled; returns it."""

    def finished() -> Manifest | None:
        run = get(bed.cluster, "workflowrun", name, bed.namespace)
        phase = ((run or {}).get("status") or {}).get("phase")
        return run if phase in FINISHED_PHASES else None

    try:
        return wait_until(finished, timeout=timeout, what=f"WorkflowRun {name} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{bed.operator.log_tail()}") from exc


def step_status(run: Manifest, step: str) -> Manifest:
    """The run's status record of `step`."""
    records = run["status"].get("steps") or []
    found: Manifest = next((r for r in records if r["name"] == step), {})
    return found


def post_invoke(
    base_url: str, namespace: str, workflow: str, body: bytes, *, token: str | None
) -> tuple[int, Any]:
    """POSTs an invoke with `token` as its bearer token (None: no Authorization header); returns
    the HTTP status and the decoded JSON answer."""
    url = f"{base_url}/v1/namespaces/{namespace}/workflows/{workflow}:invoke"
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    return response.status_code, response.json()


def restart(killed: OperatorProcess, log_path: Path) -> OperatorProcess:
    """A new operator process like `killed`, with the same endpoint overrides."""
    return OperatorProcess(
        killed.cluster, killed.namespaces, log_path, extra_env=killed.extra_env
    ).start()
