"""The `stepline` command: one entry point, a subcommand per job; also the kubectl plugin
`kubectl stepline` (the console script `kubectl-stepline`, the same `main`).

Subcommands parse their arguments here (`parsers.py`, `arguments.py`) and call into the package
(`commands.py`); no logic lives in this package. Those that talk to the cluster share
`clusters.run_on_cluster`, which maps what went wrong to the exit codes documented there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stepline import __version__
from stepline.cli.commands import COMMANDS, run_crds, run_operator
from stepline.cli.parsers import add_parsers

PLUGIN = "kubectl-stepline"

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "stepline") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"stepline {__version__}")
    add_parsers(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def program_name(argv0: str) -> str:
    """`kubectl stepline` when kubectl runs us as its plugin, else `stepline`."""
    return "kubectl stepline" if Path(argv0).name == PLUGIN else "stepline"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(program_name(sys.argv[0]))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "crds":
        return run_crds(args.out, admission_out=args.admission_out, check=args.check)
    if args.command == "run":
        return run_operator(args.namespaces, all_namespaces=args.all_namespaces)
    return COMMANDS[args.command](args)
