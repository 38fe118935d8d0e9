"""The `stepline` command: one entry point, a subcommand per job.

Subcommands parse their arguments here and call into the package; no logic lives in this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stepline import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stepline {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0
