"""What each subcommand does once its arguments are parsed: one `run_*` per command, calling
one function of the package (the terminal commands' in `stepline.terminal`) and returning the
exit code. Modules that load the API client, kopf or httpx are imported by the command that
needs them, so `stepline --help` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stepline.api import (
    Verdict,
    find_admission_policy_drift,
    find_crd_drift,
    write_admission_policies,
    write_crds,
)
from stepline.cli.clusters import USAGE, run_on_cluster


def run_operator(namespaces: list[str] | None, *, all_namespaces: bool) -> int:
    from stepline.controllers import run  # noqa: PLC0415 (kopf loads only for this command)
    from stepline.settings import Settings  # noqa: PLC0415

    overrides: dict[str, tuple[str, ...]] = {}
    if all_namespaces:
        overrides["namespaces"] = ()
    elif namespaces:
        overrides["namespaces"] = tuple(namespaces)
    run(Settings(**overrides))  # type: ignore[arg-type]
    return 0


def run_crds(out: Path, *, admission_out: Path, check: bool) -> int:
    if not check:
        for path in (*write_crds(out), write_admission_policies(admission_out)):
            print(path)
        return 0
    drift = find_crd_drift(out) + find_admission_policy_drift(admission_out)
    for problem in drift:
        print(
            f"{problem}; run `stepline crds --out {out} --admission-out {admission_out}`",
            file=sys.stderr,
        )
    return 1 if drift else 0


def run_decision(args: argparse.Namespace) -> int:
    from stepline.deciding import record_decision  # noqa: PLC0415 (the API client loads here)
    from stepline.errors import DecisionError  # noqa: PLC0415

    async def decide(kube: Any, namespace: str) -> int:
        name: str = await record_decision(
            kube, namespace, args.run, step=args.step, verdict=args.verdict, reason=args.reason
        )
        print(f"approval.stepline.io/{name} created")
        return 0

    return run_on_cluster(args, args.verdict.value.lower(), decide, refused=DecisionError)


def run_rerun(args: argparse.Namespace) -> int:
    from stepline.errors import RerunError  # noqa: PLC0415
    from stepline.resubmitting import create_rerun  # noqa: PLC0415 (the API client loads here)

    async def rerun(kube: Any, namespace: str) -> int:
        name: str = await create_rerun(kube, namespace, args.run, name=args.name)
        print(f"workflowrun.stepline.io/{name} created")
        return 0

    return run_on_cluster(args, "rerun", rerun, refused=RerunError)


def run_start(args: argparse.Namespace) -> int:
    from stepline.terminal.starting import start  # noqa: PLC0415 (the API client loads here)

    if args.timeout is not None and not args.wait:
        return usage(args, "--timeout needs --wait")
    run_input = read_run_input(args)
    if run_input is None:
        return USAGE

    async def starting(kube: Any, namespace: str) -> int:
        return await start(
            kube, namespace, workflow=args.workflow, run_input=run_input, name=args.name,
            wait=args.wait, timeout=args.timeout, out=sys.stdout,
        )  # fmt: skip

    return run_on_cluster(args, "start", starting)


def run_invoke(args: argparse.Namespace) -> int:
    from stepline.kube import default_namespace, kubeconfig_token  # noqa: PLC0415
    from stepline.terminal import invoking  # noqa: PLC0415 (httpx loads here)
    from stepline.terminal.errors import CommandError  # noqa: PLC0415

    run_input = read_run_input(args)
    if run_input is None:
        return USAGE
    environment = invoking.InvokeEnvironment()
    try:
        namespace = args.namespace or default_namespace(args.kubeconfig)
        url = invoking.build_invoke_url(args.url or environment.url, namespace, args.workflow)
        given = args.token or environment.token
        token = invoking.choose_token(given or asyncio.run(kubeconfig_token(args.kubeconfig)))
        return invoking.invoke(
            url, json.dumps(run_input).encode(), token=token, out=sys.stdout, err=sys.stderr,
            timeout=args.timeout or invoking.DEFAULT_TIMEOUT,
        )  # fmt: skip
    except CommandError as exc:
        print(f"stepline invoke: {exc}", file=sys.stderr)
        return exc.exit_code


def run_runs(args: argparse.Namespace) -> int:
    from stepline.terminal.listing import show_runs  # noqa: PLC0415 (the API client loads here)

    async def listing(kube: Any, namespace: str | None) -> int:
        return await show_runs(
            kube, namespace, workflow=args.workflow, phase=args.phase, watch=args.watch,
            out=sys.stdout, err=sys.stderr,
        )  # fmt: skip

    return run_on_cluster(args, "runs", listing, interruptible=args.watch)


def run_describe(args: argparse.Namespace) -> int:
    from stepline.terminal.describing import describe_run  # noqa: PLC0415

    async def describing(kube: Any, namespace: str) -> int:
        text = await describe_run(kube, namespace, args.run, now=datetime.now(UTC))
        print(text, end="")
        return 0

    return run_on_cluster(args, "describe", describing)


def run_graph(args: argparse.Namespace) -> int:
    from stepline.terminal.describing import draw_workflow  # noqa: PLC0415
    from stepline.terminal.graphs import GraphFormat  # noqa: PLC0415

    async def drawing(kube: Any, namespace: str) -> int:
        text = await draw_workflow(kube, namespace, args.workflow, fmt=GraphFormat(args.format))
        print(text, end="")
        return 0

    return run_on_cluster(args, "graph", drawing)


def run_cancel(args: argparse.Namespace) -> int:
    from stepline.terminal.cancelling import cancel_run  # noqa: PLC0415

    async def cancelling(kube: Any, namespace: str) -> int:
        print(await cancel_run(kube, namespace, args.run))
        return 0

    return run_on_cluster(args, "cancel", cancelling)


def read_run_input(args: argparse.Namespace) -> dict[str, Any] | None:
    """The input of `-f`, checked; None (and the reason printed) when it cannot be one."""
    from stepline.terminal.errors import UsageError  # noqa: PLC0415
    from stepline.terminal.inputs import parse_run_input, read_input_text  # noqa: PLC0415

    try:
        source, text = read_input_text(args.filename, stdin=sys.stdin)
        return parse_run_input(text, source=source)
    except UsageError as exc:
        print(f"stepline {args.command}: {exc}", file=sys.stderr)
        return None


def usage(args: argparse.Namespace, problem: str) -> int:
    print(f"stepline {args.command}: {problem}", file=sys.stderr)
    return USAGE


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **{verdict.value.lower(): run_decision for verdict in Verdict},
    "rerun": run_rerun,
    "start": run_start,
    "invoke": run_invoke,
    "runs": run_runs,
    "describe": run_describe,
    "graph": run_graph,
    "cancel": run_cancel,
}
