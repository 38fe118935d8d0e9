"""The `stepline` command: one entry point, a subcommand per job.

Subcommands parse their arguments here and call into the package; no logic lives in this module.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from stepline import __version__
from stepline.api import (
    Verdict,
    find_admission_policy_drift,
    find_crd_drift,
    write_admission_policies,
    write_crds,
)
from stepline.api.approvals import DNS1123_SUBDOMAIN, MAX_REASON_LENGTH
from stepline.api.base import DNS1123_LABEL, MAX_LABEL_LENGTH

# Exit codes of `stepline approve|reject|rerun` beyond argparse's 2 (bad arguments).
REFUSED = 1  # nothing created: no such run or step, not waiting, not rerunnable, or refused
UNREACHABLE = 3  # no credentials, or the API server did not answer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stepline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    crds = commands.add_parser(
        "crds", help="write the CustomResourceDefinitions generated from the API models"
    )
    crds.add_argument(
        "--out", type=Path, default=Path("crds"), help="directory to write to (default: crds/)"
    )
    crds.add_argument(
        "--admission-out",
        type=Path,
        default=Path("deploy/admission"),
        help="directory of approval-policies.yaml, the Approval's admission policies "
        "(default: deploy/admission/)",
    )
    crds.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out or --admission-out differ from the "
        "models",
    )
    operate = commands.add_parser(
        "run", help="run the operator (settings from STEPLINE_* environment variables)"
    )
    scope = operate.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="watch this namespace (repeatable); default: STEPLINE_NAMESPACES, else all",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    for verdict in Verdict:
        add_decision_parser(commands, verdict)
    add_rerun_parser(commands)
    return parser


def run_name(value: str) -> str:
    """A WorkflowRun's name, as the API server would take it (argparse's `type`)."""
    if len(value) > 253 or not re.match(DNS1123_SUBDOMAIN, value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a WorkflowRun name")
    return value


def step_name(value: str) -> str:
    """A step's name: lowercase letters, digits and '-', at most 63 characters."""
    if len(value) > MAX_LABEL_LENGTH or not re.match(DNS1123_LABEL, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a step name (lowercase letters, digits and '-', at most "
            f"{MAX_LABEL_LENGTH} characters)"
        )
    return value


def reason_text(value: str) -> str:
    """A decision's reason: some text, at most MAX_REASON_LENGTH characters."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the reason is empty")
    if len(value) > MAX_REASON_LENGTH:
        raise argparse.ArgumentTypeError(
            f"the reason has {len(value)} characters; at most {MAX_REASON_LENGTH}"
        )
    return value


def add_decision_parser(commands: argparse._SubParsersAction, verdict: Verdict) -> None:  # type: ignore[type-arg]
    rejecting = verdict is Verdict.REJECT
    decide = commands.add_parser(
        verdict.value.lower(),
        help=f"{verdict.value.lower()} a run's approval step: creates an Approval (needs verb "
        "approve on the run's Workflow)",
        description=f"Creates an Approval that {verdict.value.lower()}s STEP of the WorkflowRun "
        "RUN, and prints its name. Exit codes: 0 created; 1 refused (no such run or step, not "
        "waiting there, or the API server said no); 2 bad arguments; 3 no credentials or no "
        "answer from the API server.",
    )
    decide.add_argument("run", metavar="RUN", type=run_name, help="the WorkflowRun's name")
    decide.add_argument(
        "--step", required=True, type=step_name, help="the approval step the run waits at"
    )
    decide.add_argument(
        "--reason",
        required=rejecting,
        type=reason_text,
        help="why, at most 1024 characters" + (" (required)" if rejecting else ""),
    )
    decide.add_argument(
        "-n", "--namespace", help="the run's namespace (default: the kubeconfig context's)"
    )
    decide.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
    )
    decide.set_defaults(verdict=verdict)


def add_rerun_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rerun = commands.add_parser(
        "rerun",
        help="rerun a Failed or Cancelled run from its failed step: creates a new WorkflowRun "
        "with spec.rerunOf",
        description="Creates a WorkflowRun that reruns RUN (spec.rerunOf) with the same "
        "workflowRef and input, named RUN-r<N> with the first N not taken (or --name), and prints "
        "its name. The operator reuses RUN's succeeded steps and calls the others under the "
        "first run's Idempotency-Keys. Exit codes: 0 created; 1 refused (no such run, not "
        "Failed or Cancelled, the name taken, or the API server said no); 2 bad arguments; 3 no "
        "credentials or no answer from the API server.",
    )
    rerun.add_argument("run", metavar="RUN", type=run_name, help="the WorkflowRun to rerun")
    rerun.add_argument(
        "--name", type=run_name, help="the new run's name (default: RUN-r<N>, the first N free)"
    )
    rerun.add_argument(
        "-n", "--namespace", help="the run's namespace (default: the kubeconfig context's)"
    )
    rerun.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
    )


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

    async def decide(kube: Any, namespace: str) -> str:
        name: str = await record_decision(
            kube, namespace, args.run, step=args.step, verdict=args.verdict, reason=args.reason
        )
        return f"approval.stepline.io/{name}"

    return run_on_cluster(args, args.verdict.value.lower(), decide, refused=DecisionError)


def run_rerun(args: argparse.Namespace) -> int:
    from stepline.errors import RerunError  # noqa: PLC0415
    from stepline.resubmitting import create_rerun  # noqa: PLC0415 (the API client loads here)

    async def rerun(kube: Any, namespace: str) -> str:
        name: str = await create_rerun(kube, namespace, args.run, name=args.name)
        return f"workflowrun.stepline.io/{name}"

    return run_on_cluster(args, "rerun", rerun, refused=RerunError)


def run_on_cluster(
    args: argparse.Namespace,
    command: str,
    work: Callable[[Any, str], Awaitable[str]],
    *,
    refused: type[Exception],
) -> int:
    """Runs `work(kube, namespace)` against the cluster of `--kubeconfig`, prints the object it
    created, and maps its errors to the exit codes: `refused` and an API refusal REFUSED, no
    credentials or no answer UNREACHABLE."""
    from stepline.errors import ConfigurationError, KubeApiError  # noqa: PLC0415
    from stepline.kube import KubeApi, default_namespace  # noqa: PLC0415

    async def connected(namespace: str) -> str:
        kube = await KubeApi.connect(
            field_manager="stepline-cli",
            timeout=30,
            kubeconfig=args.kubeconfig,
            user_agent=f"stepline-cli/{__version__}",
        )
        try:
            return await work(kube, namespace)
        finally:
            await kube.close()

    try:
        namespace = args.namespace or default_namespace(args.kubeconfig)
        created = asyncio.run(connected(namespace))
    except refused as exc:
        print(f"stepline {command}: {exc}", file=sys.stderr)
        return REFUSED
    except ConfigurationError as exc:
        print(f"stepline {command}: {exc}", file=sys.stderr)
        return UNREACHABLE
    except KubeApiError as exc:
        print(f"stepline {command}: {exc}", file=sys.stderr)
        return UNREACHABLE if exc.status == 0 else REFUSED
    print(f"{created} created")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "crds":
        return run_crds(args.out, admission_out=args.admission_out, check=args.check)
    if args.command in {verdict.value.lower() for verdict in Verdict}:
        return run_decision(args)
    if args.command == "rerun":
        return run_rerun(args)
    if args.command == "run":
        return run_operator(args.namespaces, all_namespaces=args.all_namespaces)
    return 0
