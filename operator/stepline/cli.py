"""The `stepline` command: one entry point, a subcommand per job.

Subcommands parse their arguments here and call into the package; no logic lives in this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stepline import __version__
from stepline.api import find_crd_drift, write_crds


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
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out differ from the models",
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
    return parser


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


def run_crds(out: Path, *, check: bool) -> int:
    if not check:
        for path in write_crds(out):
            print(path)
        return 0
    drift = find_crd_drift(out)
    for problem in drift:
        print(f"{problem}; run `stepline crds --out {out}`", file=sys.stderr)
    return 1 if drift else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "crds":
        return run_crds(args.out, check=args.check)
    if args.command == "run":
        return run_operator(args.namespaces, all_namespaces=args.all_namespaces)
    return 0
