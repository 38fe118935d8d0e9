"""`stepline invoke`: the POST to the operator's invoke path with a bearer token (--token, else
STEPLINE_TOKEN, else the kubeconfig user's, else a clear refusal), the output printed as JSON,
a failed run's error printed with exit 1, and no answer told apart (exit 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepline.kube import kubeconfig_token
from stepline.terminal.errors import RefusedError, UnreachableError, UsageError
from stepline.terminal.invoking import build_invoke_url, choose_token, invoke

URL = "http://localhost:8080/v1/namespaces/shop/workflows/trade:invoke"


def answering(status: int, body: Any, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


def call(status: int, body: Any) -> tuple[int, str, str, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    out, err = io.StringIO(), io.StringIO()
    code = invoke(
        URL, b'{"order": 1}', token="t0k", out=out, err=err,
        transport=answering(status, body, seen),
    )  # fmt: skip
    return code, out.getvalue(), err.getvalue(), seen


def test_the_input_is_posted_to_the_invoke_path_with_the_bearer_token() -> None:
    code, out, err, seen = call(200, {"output": {"settled": True}, "durationSeconds": 0.1})
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", URL)
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.content == b'{"order": 1}'
    assert (code, json.loads(out), err) == (0, {"settled": True}, "")


def test_a_failed_run_prints_its_error_and_exits_1() -> None:
    error = {"reason": "StepFailed", "message": "POST … returned 503 after 3 attempts",
             "step": "settlement", "httpStatus": 503,
             "compensation": {"phase": "Succeeded", "steps": [{"name": "order",
                                                               "phase": "Succeeded"}]}}  # fmt: skip
    code, out, err, _ = call(502, {"error": error})
    assert (code, out) == (1, "")
    assert err == (
        "stepline invoke: 502 StepFailed: POST … returned 503 after 3 attempts (step "
        "'settlement', HTTP 503); undone: Succeeded (order Succeeded)\n"
    )


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "make a new one with kubectl create token"),
     (403, "bind the ClusterRole stepline-invoker")],
)  # fmt: skip
def test_a_refused_token_says_what_to_do(status: int, hint: str) -> None:
    code, _, err, _ = call(status, {"error": {"reason": "Forbidden", "message": "no"}})
    assert code == 1
    assert hint in err


def test_an_answer_that_is_not_the_operators_json_is_refused() -> None:
    with pytest.raises(RefusedError, match="is --url the operator's invoke port"):
        call(200, b"<html>hello</html>")


def test_no_answer_is_unreachable_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UnreachableError, match=f"POST {URL}: no answer"):
        invoke(URL, b"{}", token="t", out=io.StringIO(), err=io.StringIO(),
               transport=httpx.MockTransport(refuse))  # fmt: skip


def test_the_first_token_given_is_taken_and_none_is_refused_saying_how_to_get_one() -> None:
    assert choose_token(None, " env-token ", "kubeconfig-token") == "env-token"
    with pytest.raises(UnreachableError) as refused:
        choose_token(None, "", None)
    assert "no token to invoke with" in str(refused.value)
    assert "kubectl create token <serviceaccount>" in str(refused.value)


def test_the_url_needs_a_scheme_and_is_required() -> None:
    assert build_invoke_url("http://localhost:8080/", "shop", "trade") == URL
    with pytest.raises(UsageError, match="give --url or set STEPLINE_URL"):
        build_invoke_url(None, "shop", "trade")
    with pytest.raises(UsageError, match=r"give the scheme too, e\.g\. http://localhost:8080"):
        build_invoke_url("localhost:8080", "shop", "trade")


def kubeconfig(path: Path, user: dict[str, Any]) -> str:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": user}],
    }))  # fmt: skip
    return str(path)


async def test_the_kubeconfig_users_token_is_read_and_certificates_give_none(
    tmp_path: Path,
) -> None:
    assert await kubeconfig_token(kubeconfig(tmp_path / "t", {"token": "abc"})) == "abc"
    (tmp_path / "file").write_text("from-file\n")
    with_file = kubeconfig(tmp_path / "f", {"tokenFile": str(tmp_path / "file")})
    assert await kubeconfig_token(with_file) == "from-file"
    assert await kubeconfig_token(kubeconfig(tmp_path / "n", {})) is None
    assert await kubeconfig_token(str(tmp_path / "absent")) is None
