"""Many runs waiting (issue 17, part 7): what 1,000 WorkflowRuns that wait cost the operator in
memory, and how long a restarted operator takes to pick them all up again.

    .venv/bin/python bench/runs/waiting.py --kubeconfig .stepline/waiting/kubeconfig \\
        --kind approval|slow-step [--runs 1000] [--rounds term,kill] [--lease-duration 15]

`--kind approval`: Workflow `[plan -> release (approval)]`, `plan` an echo service; each run
calls it and then waits for a person (phase Waiting), parked by the operator. `--kind
slow-step`: Workflow `[call]`, whose service (`slowstep.py`) answers after `--step-delay`
seconds (600): each run holds a call in flight. Both with `concurrency: 1000`, in a fresh
namespace of a local control plane that has the CRDs and the Approvals' admission policies
(without them a Workflow with an approval step is not Ready).

Measured:

1. Memory: the operator's RSS from /proc/<pid>/status (VmRSS, with VmHWM, its peak) once it is
   idle with its Workflow Ready and again once every run waits (all Waiting, or every call
   arrived at the service), after `--settle` seconds more. Nothing is asked of the process to
   free memory first (no gc, no malloc_trim): RSS as the kernel counts it.
2. Restart, one round per `--rounds` entry: the operator gets SIGTERM (`term`) or SIGKILL
   (`kill`), a new one is started once it has exited, and the time is taken from the signal
   until every run is picked up again. For approval runs that is the run counted in the new
   operator's `stepline_runs_waiting` gauge (parked from its status, with no task and no write;
   the status writes it sent anyway are counted from the API server's audit log). For
   slow-step runs it is the call re-sent under the same Idempotency-Key, as the service saw it
   arrive. After a SIGKILL the old leader's Lease has to expire first: the new process takes it
   over once it has not changed for `--lease-duration` seconds
   (STEPLINE_LEASE_DURATION_SECONDS, default 15).

Also printed: when the new process answered its liveness probe and became the leader
(`stepline_leader`, read every 0.25 s), its RSS once the runs were picked up, and the CPU
seconds of the operator and the API server over each phase. Results are recorded in RESULTS.md.

`--memory-dumps DIR [--tracemalloc]` is a diagnosis of where the memory goes, not the
measurement: the operator dumps what it holds at each of those points (`probes.DUMPING`). It
then runs with a Lease of 120 s (renew deadline 100 s), as a dump stops its event loop for
seconds: the restart times of such a run mean nothing. kubectl is the one hack/cluster-up.sh
links beside the kubeconfig, unless $KUBECTL says otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "overhead"))
import harness
from echo import EchoServices
from measuring import PAYLOAD
from probes import (
    DUMPING,
    GROUP,
    MIB,
    PLURAL,
    VERSION,
    AuditLog,
    LeaderWatch,
    Operator,
    Phases,
    audit_log_path,
    describe_memory,
    memory,
    metric_sum,
)
from slowstep import SlowStep

# The audit log of the status writes a re-parking sent is read this long after the last run was
# parked again (none are expected: runs are parked from their status).
QUIET_SECONDS = 5.0
# Seconds between two reads of the new operator's parked runs gauge.
PARKED_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Kind:
    """What the runs of one `--kind` wait on."""

    name: str
    steps: list[dict[str, Any]]
    workflow_steps: list[dict[str, Any]]


def build_kind(name: str) -> Kind:
    if name == "approval":
        step = harness.service_step(0)  # echo-0
        chain: list[dict[str, Any]] = [
            {"name": "plan", "stepRef": "echo-0"},
            {"name": "release", "dependsOn": ["plan"], "approval": {"timeoutSeconds": 86400}},
        ]
        return Kind(name, [step], chain)
    step = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceStep",
        "metadata": {"name": "slow"},
        # 15 minutes: the service answers after 10, and nothing here waits for that.
        "spec": {"image": "example.invalid/slow:1", "path": "/", "timeoutSeconds": 900},
    }
    return Kind(name, [step], [{"name": "call", "stepRef": "slow"}])


def workflow_body(kind: Kind, runs: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": kind.name},
        "spec": {"steps": kind.workflow_steps, "concurrency": min(runs, 1000)},
    }


def run_body(kind: Kind, index: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": f"run-{index:05d}"},
        "spec": {"workflowRef": kind.name, "input": PAYLOAD},
    }


class Bench:
    """One `--kind` on one namespace: the services, the operator processes, the measurements."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.kind = build_kind(args.kind)
        self.kubeconfig = args.kubeconfig
        config.load_kube_config(config_file=self.kubeconfig)
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = args.creators * 2
        self.custom = client.CustomObjectsApi(client.ApiClient(configuration))
        if self.kind.name == "approval":
            echo = stack.enter_context(EchoServices(1))
            self.overrides = {"echo-0": echo.urls[0]}
            self.slow: SlowStep | None = None
        else:
            self.slow = stack.enter_context(SlowStep(args.step_delay))
            self.overrides = {"slow": self.slow.url}
        self.namespace = stack.enter_context(self._namespace())
        self.apiserver = harness.component_pids(self.kubeconfig)["kube-apiserver"]
        self.audit = AuditLog(audit_log_path(self.kubeconfig), self.namespace)
        self.logs = Path(tempfile.gettempdir()) / f"stepline-waiting-{self.namespace}"
        self.logs.mkdir(exist_ok=True)
        self.operators: list[Operator] = []
        stack.callback(self._stop_operators)

    @contextmanager
    def _namespace(self) -> Iterator[str]:
        namespace = f"waiting-{uuid.uuid4().hex[:6]}"
        harness.kubectl(self.kubeconfig, "create", "namespace", namespace)
        try:
            objects = [*self.kind.steps, workflow_body(self.kind, self.args.runs)]
            harness.apply(self.kubeconfig, namespace, objects)
            yield namespace
        finally:
            harness.kubectl(self.kubeconfig, "delete", "namespace", namespace, "--wait=false")

    def _stop_operators(self) -> None:
        for operator in self.operators:
            if operator.process.poll() is None:
                harness.stop(operator.process)

    def start_operator(self) -> Operator:
        duration = self.args.lease_duration
        lease = {"STEPLINE_LEASE_DURATION_SECONDS": str(duration)}
        if duration < 15:  # client-go's ratios: renew deadline 2/3 of it, retry period 2/15
            lease["STEPLINE_LEASE_RENEW_DEADLINE_SECONDS"] = str(duration * 2 / 3)
            lease["STEPLINE_LEASE_RETRY_PERIOD_SECONDS"] = str(duration * 2 / 15)
        if self.args.memory_dumps:  # a dump stops the event loop for seconds: past the fence
            lease["STEPLINE_LEASE_RENEW_DEADLINE_SECONDS"] = str(max(duration - 5, 100))
            lease["STEPLINE_LEASE_DURATION_SECONDS"] = str(max(duration, 120))
        log = self.logs / f"operator-{len(self.operators)}.log"
        folder, trace = self.args.memory_dumps, self.args.tracemalloc
        code = DUMPING.format(folder=Path(folder).resolve(), trace=trace) if folder else ""
        started = time.time()
        process, ports = harness.launch_operator(
            self.kubeconfig, self.namespace, self.overrides, log, extra_env=lease, code=code
        )
        operator = Operator(process, ports, started, log)
        self.operators.append(operator)
        return operator

    def create_runs(self) -> float:
        def create(index: int) -> None:
            body = run_body(self.kind, index)
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )

        began = time.monotonic()
        with ThreadPoolExecutor(self.args.creators) as pool:
            list(pool.map(create, range(self.args.runs)))
        return time.monotonic() - began

    def all_waiting(self, phases: Phases) -> Callable[[], bool]:
        runs = self.args.runs
        if self.slow is not None:
            slow = self.slow
            return lambda: len(slow.arrivals()) >= runs and phases.count()["Running"] >= runs
        return lambda: phases.count()["Waiting"] >= runs

    def dump_memory(self, operator: Operator, when: str) -> None:
        """With `--memory-dumps`: the first line of the dump the operator writes (DUMPING)."""
        if not self.args.memory_dumps:
            return
        folder, pid = Path(self.args.memory_dumps), operator.process.pid
        before = set(folder.glob(f"dump-{pid}-*.txt"))
        os.kill(pid, signal.SIGUSR1)
        harness.wait_for(lambda: set(folder.glob(f"dump-{pid}-*.txt")) - before, 60, "a dump")
        (dump,) = set(folder.glob(f"dump-{pid}-*.txt")) - before
        print(f"  dump, {when}: {dump.read_text().splitlines()[0]} ({dump})")

    def cpu(self, operator: Operator) -> dict[str, float]:
        return {
            "operator": harness.process_cpu(operator.process.pid),
            "kube-apiserver": harness.process_cpu(self.apiserver),
        }


def wait_ready(bench: Bench, operator: Operator) -> None:
    harness.wait_for(lambda: harness.alive(operator.ports), 60, "operator alive")
    harness.kubectl(
        bench.kubeconfig, "-n", bench.namespace, "wait", "--for=condition=Ready",
        "--timeout=180s", "workflows", "--all",
    )  # fmt: skip


def fill(bench: Bench, operator: Operator) -> None:
    """Idle RSS, then the runs created and waiting, then RSS again."""
    args = bench.args
    wait_ready(bench, operator)
    time.sleep(args.settle)
    idle = memory(operator.process.pid)
    print(f"operator idle (Workflow Ready, {args.settle:.0f} s after): {describe_memory(idle)}")
    bench.dump_memory(operator, "idle")
    phases = Phases(bench.custom, bench.namespace)
    cpu_before = bench.cpu(operator)
    began = time.monotonic()
    creating = bench.create_runs()
    print(f"{args.runs} runs created in {creating:.1f} s")
    harness.wait_for(bench.all_waiting(phases), args.timeout, f"{args.runs} runs waiting")
    waiting = time.monotonic() - began
    cpu_after = bench.cpu(operator)
    print(f"all {args.runs} waiting {waiting:.1f} s after the first create; {dict(phases.count())}")
    for name, seconds in cpu_after.items():
        print(f"  CPU {name}: {seconds - cpu_before[name]:.1f} s")
    time.sleep(args.settle)
    full = memory(operator.process.pid)
    print(f"operator with {args.runs} waiting ({args.settle:.0f} s after): {describe_memory(full)}")
    bench.dump_memory(operator, f"{args.runs} waiting")
    above = (full["VmRSS"] - idle["VmRSS"]) / MIB
    peak = (full["VmHWM"] - idle["VmRSS"]) / MIB
    verdict = "met" if above <= 50 else "NOT met"
    print(f"RSS above idle: {above:.1f} MiB (peak {peak:.1f} MiB); goal <= 50 MiB: {verdict}")
    in_flight = metric_sum(operator.scrape(), "stepline_runs_in_flight") or 0
    print(f"stepline_runs_in_flight (tasks executing a run): {in_flight:.0f}")
    phases.stop()


def restart(bench: Bench, operator: Operator, how: str, round_number: int) -> Operator:
    """One round: `how` (term, kill) the operator, start another, time the pick-up."""
    args = bench.args
    bench.audit.skip_to_end()
    signalled = time.time()
    os.kill(operator.process.pid, signal.SIGTERM if how == "term" else signal.SIGKILL)
    operator.process.wait(timeout=60)
    milestones = {"old operator exited": time.time()}
    new = bench.start_operator()
    milestones["new operator started"] = new.started
    cpu_before = bench.cpu(new)
    leader = LeaderWatch(new)
    harness.wait_for(lambda: harness.alive(new.ports), 60, "new operator alive")
    milestones["new operator alive"] = time.time()
    if bench.slow is None:
        times, detail = approval_pickup(bench, new)
    else:
        times, detail = call_pickup(bench, round_number)
    leader.stop()
    milestones["new operator leading"] = leader.leading or math.nan
    times.sort()
    milestones["first run picked up"] = times[0]
    milestones["half of them picked up"] = times[len(times) // 2]
    milestones[f"all {len(times)} picked up"] = last = times[-1]
    cpu_after = bench.cpu(new)
    print(f"\nround {round_number}: SIG{how.upper()} at 0.0 s")
    for what, when in milestones.items():
        print(f"  {what:26s} {when - signalled:6.1f} s")
    verdict = "met" if last - signalled <= 30 else "NOT met"
    print(f"  goal <= 30 s from the signal: {verdict}; {detail}")
    for name, seconds in cpu_after.items():
        print(f"  CPU {name} (from the new start): {seconds - cpu_before[name]:.1f} s")
    time.sleep(args.settle)
    print(f"  new operator ({args.settle:.0f} s after): {describe_memory(memory(new.process.pid))}")
    bench.dump_memory(new, "picked up")
    return new


def approval_pickup(bench: Bench, operator: Operator) -> tuple[list[float], str]:
    """When each run was parked again by `operator` (Unix times): read from its
    `stepline_runs_waiting` gauge every `PARKED_POLL_SECONDS` (a run parked between two reads
    counts at the second), and the status writes it sent meanwhile (the audit log)."""
    runs, times, halfway = bench.args.runs, [], False
    until = time.monotonic() + bench.args.timeout
    while len(times) < runs:
        parked = int(metric_sum(operator.scrape(), "stepline_runs_waiting") or 0)
        now = time.time()
        times.extend([now] * (min(parked, runs) - len(times)))
        if len(times) >= runs // 2 and not halfway:  # with --memory-dumps: what it holds then
            halfway = True
            bench.dump_memory(operator, "half of the runs picked up")
        if time.monotonic() > until:
            raise TimeoutError(f"{len(times)} of {runs} runs parked again")
        time.sleep(PARKED_POLL_SECONDS)
    time.sleep(QUIET_SECONDS)
    writes = [w for w in bench.audit.status_writes() if w[1] >= operator.started]
    codes = Counter(w[3] for w in writes)
    detail = f"status PATCHes sent {len(writes)}, codes {dict(codes)}"
    return times, detail


def call_pickup(bench: Bench, round_number: int) -> tuple[list[float], str]:
    """When each run's call arrived again (its round_number + 1-th time; Unix times)."""
    assert bench.slow is not None  # noqa: S101
    runs, want = bench.args.runs, round_number + 1

    def again() -> dict[str, list[float]]:
        assert bench.slow is not None  # noqa: S101
        return {key: times for key, times in bench.slow.arrivals().items() if len(times) >= want}

    harness.wait_for(lambda: len(again()) >= runs, bench.args.timeout, f"{runs} calls re-sent")
    arrivals = bench.slow.arrivals()
    times = [found[want - 1] for found in arrivals.values()]
    counts = Counter(len(found) for found in arrivals.values())
    return times, f"arrivals per Idempotency-Key {dict(counts)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--kind", choices=("approval", "slow-step"), required=True)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--creators", type=int, default=8, help="threads creating runs")
    parser.add_argument("--rounds", default="term,kill", help="restarts: term and/or kill")
    parser.add_argument(
        "--lease-duration", type=int, default=15, help="STEPLINE_LEASE_DURATION_SECONDS"
    )
    parser.add_argument("--step-delay", type=float, default=600, help="the slow step's answer")
    parser.add_argument("--settle", type=float, default=10, help="seconds before reading RSS")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--memory-dumps", default="", help="a folder for dumps (DUMPING)")
    parser.add_argument("--tracemalloc", action="store_true", help="dumps with tracemalloc")
    args = parser.parse_args()
    beside = Path(args.kubeconfig).resolve().parent / "bin" / "kubectl"
    if "KUBECTL" not in os.environ and beside.exists():  # hack/cluster-up.sh links it there
        harness.KUBECTL = str(beside)
    print(harness.uptime())
    with ExitStack() as stack:
        bench = Bench(args, stack)
        print(f"kind {args.kind}, {args.runs} runs, namespace {bench.namespace}, "
              f"lease duration {args.lease_duration} s, logs in {bench.logs}")  # fmt: skip
        operator = bench.start_operator()
        fill(bench, operator)
        print(harness.uptime())
        for number, how in enumerate(args.rounds.split(","), start=1):
            operator = restart(bench, operator, how.strip(), number)
            print(harness.uptime())


if __name__ == "__main__":
    main()
