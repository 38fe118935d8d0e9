"""The subcommands' parsers: one `add_*_parser` per command, each documenting its arguments and
its exit codes (`clusters.py`) in its `--help`. Pure: no I/O.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from stepline.api import Verdict
from stepline.cli.arguments import (
    GRAPH_FORMATS,
    add_cluster_flags,
    add_input_flag,
    positive_seconds,
    reason_text,
    run_name,
    run_phase,
    step_name,
    workflow_name,
)

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_parsers(commands: Commands) -> None:
    """Every subcommand, in the order `--help` lists them."""
    add_operator_parsers(commands)
    for verdict in Verdict:
        add_decision_parser(commands, verdict)
    add_rerun_parser(commands)
    add_start_parser(commands)
    add_invoke_parser(commands)
    add_runs_parser(commands)
    add_describe_parser(commands)
    add_graph_parser(commands)
    add_cancel_parser(commands)


def add_operator_parsers(commands: Commands) -> None:
    """`stepline crds` and `stepline run`: the operator's own."""
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


def add_decision_parser(commands: Commands, verdict: Verdict) -> None:
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
    add_cluster_flags(decide)
    decide.set_defaults(verdict=verdict)


def add_rerun_parser(commands: Commands) -> None:
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
    add_cluster_flags(rerun)


def add_start_parser(commands: Commands) -> None:
    start = commands.add_parser(
        "start",
        help="start a WorkflowRun of a Workflow, and with --wait follow it to its end",
        description="Creates a WorkflowRun of WORKFLOW with the input of -f (default {}), named "
        "WORKFLOW-<5 characters> unless --name, and prints its name. With --wait, follows it "
        "until it finishes and prints its step timeline. Exit codes: 0 created (with --wait: "
        "and Succeeded); 1 refused (no such Workflow, the name taken, the API server said no) "
        "or, with --wait, the run did not succeed (or --timeout passed); 2 bad arguments or an "
        "input that is not a JSON object; 3 no credentials or no answer from the API server.",
    )
    start.add_argument("workflow", metavar="WORKFLOW", type=workflow_name, help="the Workflow")
    add_input_flag(start)
    start.add_argument("--name", type=run_name, help="the run's name (default: generated)")
    start.add_argument("--wait", action="store_true", help="follow the run until it finishes")
    start.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="with --wait: stop following after this long (the run goes on); default: never",
    )
    add_cluster_flags(start)


def add_invoke_parser(commands: Commands) -> None:
    invoke = commands.add_parser(
        "invoke",
        help="run a Workflow synchronously through the operator's invoke port; print its output",
        description="POSTs the input of -f (default {}) to URL/v1/namespaces/NS/workflows/"
        "WORKFLOW:invoke with a bearer token (--token, else $STEPLINE_TOKEN, else the "
        "kubeconfig user's) and prints the run's output as JSON. Exit codes: 0 the run "
        "succeeded; 1 it failed or the operator refused (the error is printed); 2 bad "
        "arguments or input, or no URL; 3 no token, or no answer from URL.",
    )
    invoke.add_argument("workflow", metavar="WORKFLOW", type=workflow_name, help="the Workflow")
    add_input_flag(invoke)
    invoke.add_argument(
        "--url", help="the operator's invoke port, e.g. http://localhost:8080 (default: "
        "$STEPLINE_URL)"
    )  # fmt: skip
    invoke.add_argument(
        "--token", help="bearer token (default: $STEPLINE_TOKEN, else the kubeconfig user's)"
    )
    invoke.add_argument(
        "--timeout", type=positive_seconds, metavar="SECONDS",
        help="how long to wait for the answer (default: 90)",
    )  # fmt: skip
    add_cluster_flags(invoke)


def add_runs_parser(commands: Commands) -> None:
    runs = commands.add_parser(
        "runs",
        help="list WorkflowRuns as a table, newest last; -w to watch them change",
        description="Lists WorkflowRuns: NAME, WORKFLOW, PHASE, STEPS (done/all), AGE and "
        "DURATION, newest last. With -w, then prints each run whose phase or steps change, "
        "until Ctrl-C. Exit codes: 0 listed; 1 the API server said no; 3 no credentials or no "
        "answer from the API server.",
    )
    runs.add_argument("--workflow", type=workflow_name, help="only the runs of this Workflow")
    runs.add_argument("--phase", type=run_phase, help="only the runs in this phase")
    runs.add_argument(
        "-w", "--watch", action="store_true", help="after the table, print the runs that change"
    )
    add_cluster_flags(runs, listing=True)


def add_describe_parser(commands: Commands) -> None:
    describe = commands.add_parser(
        "describe",
        help="a WorkflowRun as a step timeline: phases, times, attempts, outputs and errors",
        description="Prints RUN's phase, reason and times, then each step in the order the "
        "steps started: its phase, start (from the run's), duration, attempts and output or "
        "error, with approval waits, forEach elements and compensations under it. Exit codes: "
        "0 printed; 1 no such run; 3 no credentials or no answer from the API server.",
    )
    describe.add_argument("run", metavar="RUN", type=run_name, help="the WorkflowRun")
    add_cluster_flags(describe)


def add_graph_parser(commands: Commands) -> None:
    graph = commands.add_parser(
        "graph",
        help="a Workflow's steps and what each waits for, as text, mermaid or dot",
        description="Draws WORKFLOW's steps in the order the operator plans them, each with "
        "the steps it waits for, its condition (when), forEach, approval and compensation. "
        "Exit codes: 0 drawn; 1 no such Workflow; 3 no credentials or no answer from the API "
        "server.",
    )
    graph.add_argument("workflow", metavar="WORKFLOW", type=workflow_name, help="the Workflow")
    graph.add_argument(
        "--format", choices=GRAPH_FORMATS, default=GRAPH_FORMATS[0],
        help="text (default), mermaid (a flowchart) or dot (Graphviz)",
    )  # fmt: skip
    add_cluster_flags(graph)


def add_cancel_parser(commands: Commands) -> None:
    cancel = commands.add_parser(
        "cancel",
        help="cancel a WorkflowRun (spec.cancel: true): no new step starts",
        description="Sets spec.cancel on RUN: the operator starts no new step, lets the calls "
        "in flight end, undoes what has a compensation, and ends the run Cancelled. Exit codes: "
        "0 requested; 1 no such run, or it has finished already; 3 no credentials or no answer "
        "from the API server.",
    )
    cancel.add_argument("run", metavar="RUN", type=run_name, help="the WorkflowRun")
    add_cluster_flags(cancel)
