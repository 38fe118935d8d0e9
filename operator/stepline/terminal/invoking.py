"""`stepline invoke WORKFLOW`: the synchronous invoke, from a terminal. It POSTs the input to
`<url>/v1/namespaces/<namespace>/workflows/<name>:invoke` (the operator's invoke port,
docs/operator.md "Synchronous invoke") and prints the run's output as JSON, or the error the
operator answered (exit 1).

Invoke is authorised with the caller's bearer token (a TokenReview and a SubjectAccessReview at
the operator), so one is needed: `--token`, else `$STEPLINE_TOKEN`, else the token the
kubeconfig's user authenticates with, if it has one (a user with client certificates has none).
Without any, the command says so and how to get one, and sends nothing (`UnreachableError`).
The URL is `--url`, else `$STEPLINE_URL`. The environment is read once, by `InvokeEnvironment`,
where `cli.py` starts the command.

The HTTP call goes through httpx; `transport` is the seam unit tests answer through.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepline.terminal.errors import REFUSED, RefusedError, UnreachableError, UsageError

# Seconds to wait for the answer: more than the operator's own invoke deadline (60 s by
# default, STEPLINE_INVOKE_TIMEOUT_SECONDS), so that its 504 comes back rather than our timeout.
DEFAULT_TIMEOUT = 90.0
CONNECT_TIMEOUT = 10.0
NO_CREDENTIAL = (
    "no token to invoke with: give --token, or set STEPLINE_TOKEN; the kubeconfig's user has "
    "none (client certificates are not sent to the operator). The operator checks the token "
    "with a TokenReview: use a ServiceAccount's, allowed verb invoke on the Workflow, e.g. "
    '--token "$(kubectl create token <serviceaccount> -n <namespace>)"'
)
NO_URL = (
    "no URL of the operator's invoke port: give --url or set STEPLINE_URL (e.g. `kubectl -n "
    "stepline-system port-forward svc/stepline 8080:8080`, then --url http://localhost:8080)"
)
HINTS = {
    401: "the operator did not accept the token (expired, or for another audience); make a "
    "new one with kubectl create token <serviceaccount>",
    403: "the token's user may not invoke this Workflow: bind the ClusterRole stepline-invoker "
    "(kubectl create rolebinding … --clusterrole=stepline-invoker --serviceaccount=<ns>:<name>)",
}


class InvokeEnvironment(BaseSettings):
    """What `stepline invoke` takes from the environment: STEPLINE_URL and STEPLINE_TOKEN. Only
    the command reads it; the operator's settings are `stepline.settings.Settings`."""

    model_config = SettingsConfigDict(env_prefix="STEPLINE_", frozen=True, extra="ignore")

    url: str | None = None
    token: str | None = None


def build_invoke_url(base_url: str | None, namespace: str, workflow: str) -> str:
    """The invoke URL of `workflow`; `UsageError` without a base URL, or one not http(s)."""
    if not base_url:
        raise UsageError(NO_URL)
    if not base_url.startswith(("http://", "https://")):
        raise UsageError(f"--url {base_url}: give the scheme too, e.g. http://{base_url}")
    return f"{base_url.rstrip('/')}/v1/namespaces/{namespace}/workflows/{workflow}:invoke"


def choose_token(*candidates: str | None) -> str:
    """The first token given, in the order of precedence; `UnreachableError` when none is."""
    for candidate in candidates:
        if candidate and candidate.strip():
            return candidate.strip()
    raise UnreachableError(NO_CREDENTIAL)


def send_invoke(
    url: str,
    body: bytes,
    *,
    token: str,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> tuple[int, Any]:
    """POSTs `body`; the answer's status and JSON. `UnreachableError` when nothing answers in
    time, `RefusedError` for an answer that is not the operator's JSON."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
    try:
        with httpx.Client(transport=transport, timeout=limits, trust_env=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise UnreachableError(
            f"POST {url}: no answer within {timeout:g} s ({type(exc).__name__}); the run may "
            "have gone on at the operator"
        ) from exc
    except httpx.TransportError as exc:
        raise UnreachableError(f"POST {url}: no answer ({exc or type(exc).__name__})") from exc
    try:
        return response.status_code, response.json()
    except ValueError as exc:
        excerpt = response.text[:200]
        raise RefusedError(
            f"POST {url}: {response.status_code}, and the answer is not the operator's JSON: "
            f"{excerpt!r} (is --url the operator's invoke port?)"
        ) from exc


def describe_failure(status: int, answer: Any) -> str:
    """`502 StepFailed: … (step 'settlement', HTTP 503)`, and what to do for 401 and 403."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return f"{status}: {json.dumps(answer)[:500]}"
    text = f"{status} {error.get('reason')}: {error.get('message')}"
    where = []
    if error.get("step"):
        where.append(f"step {error['step']!r}")
    if error.get("httpStatus"):
        where.append(f"HTTP {error['httpStatus']}")
    if where:
        text += f" ({', '.join(where)})"
    undo = error.get("compensation")
    if isinstance(undo, dict):
        steps = ", ".join(f"{s.get('name')} {s.get('phase')}" for s in undo.get("steps") or [])
        text += f"; undone: {undo.get('phase')} ({steps})"
    if status in HINTS:
        text += f"; {HINTS[status]}"
    return text


def invoke(
    url: str,
    body: bytes,
    *,
    token: str,
    out: TextIO,
    err: TextIO,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """The command once its URL, input and token are known: prints the output (exit 0) or the
    failure (exit 1)."""
    status, answer = send_invoke(url, body, token=token, timeout=timeout, transport=transport)
    if status == 200 and isinstance(answer, dict) and "output" in answer:
        print(json.dumps(answer["output"], indent=2, ensure_ascii=False), file=out)
        return 0
    print(f"stepline invoke: {describe_failure(status, answer)}", file=err)
    return REFUSED
