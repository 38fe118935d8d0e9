"""One way for every command that talks to the cluster: connect with the kubeconfig, run the
command's work, and map what went wrong to the exit codes the commands document.

    0    done
    1    refused: no such object, it cannot take the request, or the API server said no
    2    bad arguments or input (argparse's own code; nothing was sent)
    3    no credentials, or no answer (the message names the address tried)
    130  Ctrl-C (0 for a watch, which is how one ends it)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stepline import __version__

REFUSED = 1
USAGE = 2
UNREACHABLE = 3
INTERRUPTED = 130  # as a shell reports SIGINT
FIELD_MANAGER = "stepline-cli"
API_TIMEOUT = 30


def run_on_cluster(
    args: argparse.Namespace,
    command: str,
    work: Callable[[Any, Any], Awaitable[int]],
    *,
    refused: type[Exception] | None = None,
    interruptible: bool = False,
) -> int:
    """Runs `work(kube, namespace)` against the cluster of `--kubeconfig` (`namespace` None with
    -A) and returns its exit code, or the code of what it raised: a command's own
    (`CommandError.exit_code`), `refused` and an API refusal REFUSED, no credentials or no
    answer UNREACHABLE. Ctrl-C ends a watch (`interruptible`) with 0, anything else with 130."""
    from stepline.errors import ConfigurationError, KubeApiError  # noqa: PLC0415
    from stepline.kube import KubeApi, default_namespace  # noqa: PLC0415 (the client loads here)
    from stepline.terminal.errors import CommandError  # noqa: PLC0415

    server: list[str] = []

    async def connected(namespace: str | None) -> int:
        kube = await KubeApi.connect(
            field_manager=FIELD_MANAGER,
            timeout=API_TIMEOUT,
            kubeconfig=args.kubeconfig,
            user_agent=f"stepline-cli/{__version__}",
        )
        server.append(getattr(kube, "server", ""))  # a test's stand-in may not say
        try:
            return await work(kube, namespace)
        finally:
            await kube.close()

    if args.kubeconfig is not None and not Path(args.kubeconfig).is_file():
        message = f"no kubeconfig at {args.kubeconfig} (--kubeconfig): no such file"
        print(f"stepline {command}: {message}", file=sys.stderr)
        return UNREACHABLE
    try:
        every = getattr(args, "all_namespaces", False)
        namespace = None if every else args.namespace or default_namespace(args.kubeconfig)
        return asyncio.run(connected(namespace))
    except KeyboardInterrupt:
        return 0 if interruptible else INTERRUPTED
    except (CommandError, ConfigurationError, KubeApiError) as exc:
        message, code = explain(exc, server=server[0] if server else None)
    except Exception as exc:
        if refused is None or not isinstance(exc, refused):
            raise
        message, code = str(exc), REFUSED
    print(f"stepline {command}: {message}", file=sys.stderr)
    return code


def explain(error: Exception, *, server: str | None) -> tuple[str, int]:
    """What to print of a command's error, and the exit code."""
    from stepline.errors import KubeApiError  # noqa: PLC0415
    from stepline.terminal.errors import CommandError  # noqa: PLC0415

    if isinstance(error, CommandError):
        return str(error), error.exit_code
    if not isinstance(error, KubeApiError):  # no credentials
        return str(error), UNREACHABLE
    if error.status != 0:
        return str(error), REFUSED
    where = server or "the kubeconfig's server"
    return f"no answer from the API server at {where}: {error}", UNREACHABLE
