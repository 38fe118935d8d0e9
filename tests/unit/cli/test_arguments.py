"""The terminal commands' arguments: what the API server would refuse is refused first (exit 2,
naming the argument, nothing sent); kubectl's flags; and the same `main` serving as the kubectl
plugin `kubectl stepline`."""

from __future__ import annotations

import pytest

from stepline import cli
from stepline.cli.arguments import GRAPH_FORMATS
from stepline.terminal.graphs import GraphFormat


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["start"], "the following arguments are required: WORKFLOW"),
        (["start", "Trade_1"], "'Trade_1' is not a Workflow name"),
        (["start", "trade", "--name", "Run!"], "'Run!' is not a WorkflowRun name"),
        (["start", "trade", "--wait", "--timeout", "0"], "'0': give a number of seconds above 0"),
        (["start", "trade", "--wait", "--timeout", "soon"], "'soon' is not a number of seconds"),
        (["runs", "-n", "shop", "-A"], "argument -A/--all-namespaces: not allowed with argument"),
        (["runs", "--phase", "Done"], "'Done' is not a phase of a run (Pending, Running,"),
        (["describe"], "the following arguments are required: RUN"),
        (["graph", "trade", "--format", "svg"], "invalid choice: 'svg'"),
        (["cancel", "a" * 254], "is not a WorkflowRun name"),
        (["invoke", "trade", "--timeout", "-1"], "give a number of seconds above 0"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_a_phase_is_taken_in_any_case() -> None:
    args = cli.build_parser().parse_args(["runs", "--phase", "succeeded", "-A", "-w"])
    assert (args.phase, args.all_namespaces, args.watch) == ("Succeeded", True, True)


def test_the_graph_formats_are_the_renderers() -> None:
    assert tuple(fmt.value for fmt in GraphFormat) == GRAPH_FORMATS


def test_run_as_kubectl_stepline_it_calls_itself_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["/usr/local/bin/kubectl-stepline", "runs", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert capsys.readouterr().out.startswith("usage: kubectl stepline runs [-h]")
    assert cli.program_name("/venv/bin/stepline") == "stepline"


@pytest.mark.parametrize("command", ["start", "invoke", "runs", "describe", "graph", "cancel"])
def test_each_command_documents_its_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0" in text
    assert "--kubeconfig" in text
