"""A run page's buttons posted (`…/runs/{name}/actions`): done with the signed-in user's own
token (a fake `KubeApi.acting_as`), only for a user RBAC lets, only from a page of the view;
refused with a page saying why, never done behind the user's back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from stepline.errors import KubeApiError
from stepline.ui.app import UiApp
from tests.unit.gateway.reviewers import TOKEN
from tests.unit.ui.cluster import (
    HOST,
    OPERATOR,
    WAITING,
    Reviewer,
    Runs,
    UserKube,
    at,
    get,
    header,
    post,
    reason_of,
    run_body,
    succeeded,
    text,
)

RUN = "/ui/namespaces/shop/runs/trade-x7k2p"
ACTIONS = f"{RUN}/actions"
ORIGIN = f"http://{HOST}"


@pytest.fixture
def running(runs: Runs, kube: UserKube) -> dict[str, Any]:
    """A running run, as the view reads it and as the user's client finds it."""
    body = run_body(succeeded("validation", 0, 0.1, {"approved": True}), phase="Running")
    kube.cluster.put(body)
    return runs.put(body)


@pytest.fixture
def operator(reviewer: Reviewer) -> Reviewer:
    """The user may patch and create runs, and decide approvals of trade."""
    reviewer.allow(*OPERATOR, ("create", "approvals", ""), ("approve", "workflows", "trade"))
    return reviewer


def act(action: str, *, origin: str = ORIGIN, **fields: str) -> Any:
    form = "&".join(f"{k}={v}" for k, v in {"action": action, **fields}.items())
    return post(ACTIONS, form, origin=origin)


@pytest.mark.usefixtures("running", "operator")
async def test_cancel_is_sent_with_the_users_own_token_and_says_it_was_requested(
    app: UiApp, kube: UserKube
) -> None:
    answer = await app(act("cancel"))

    assert answer.status == 303
    assert header(answer, "Location") == f"{RUN}?done=cancel"
    assert kube.tokens == [TOKEN]
    assert kube.cluster.patches == [("WorkflowRun", "trade-x7k2p", {"spec": {"cancel": True}})]


@pytest.mark.usefixtures("running", "operator")
@pytest.mark.parametrize(("action", "suspend"), [("suspend", True), ("resume", False)])
async def test_suspend_and_resume_patch_spec_suspend(
    app: UiApp, kube: UserKube, action: str, suspend: bool
) -> None:
    answer = await app(act(action))

    assert header(answer, "Location") == f"{RUN}?done={action}"
    assert kube.cluster.patches == [("WorkflowRun", "trade-x7k2p", {"spec": {"suspend": suspend}})]


@pytest.mark.usefixtures("operator")
async def test_a_rerun_is_created_and_its_page_shown(
    app: UiApp, runs: Runs, kube: UserKube
) -> None:
    failed = run_body(phase="Failed", finishedAt=at(2), durationSeconds=2.0)
    kube.cluster.put(failed)
    runs.put(failed)

    answer = await app(act("rerun"))

    assert header(answer, "Location") == f"{RUN}-r1?done=rerun"
    assert [c["metadata"]["name"] for c in kube.cluster.created] == ["trade-x7k2p-r1"]


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize(("action", "decision"), [("approve", "Approve"), ("reject", "Reject")])
async def test_an_approval_is_created_for_the_waiting_step_as_the_user(
    app: UiApp, runs: Runs, kube: UserKube, action: str, decision: str
) -> None:
    kube.cluster.put(WAITING)
    runs.put(WAITING)

    answer = await app(act(action, step="sign-off", reason="checked%20by%20hand"))

    assert header(answer, "Location") == f"{RUN}?done={action}"
    (approval,) = kube.cluster.created
    assert approval["kind"] == "Approval"
    assert approval["spec"]["step"] == "sign-off"
    assert approval["spec"]["decision"] == decision
    assert approval["spec"]["reason"] == "checked by hand"
    assert kube.tokens == [TOKEN]


@pytest.mark.usefixtures("operator")
async def test_an_approval_without_its_step_is_400_and_nothing_is_created(
    app: UiApp, runs: Runs, kube: UserKube
) -> None:
    kube.cluster.put(WAITING)
    runs.put(WAITING)

    answer = await app(act("approve"))

    assert answer.status == 400
    assert "an approval names the waiting step" in text(answer)
    assert kube.cluster.created == []


@pytest.mark.usefixtures("operator")
async def test_cancelling_a_run_that_has_ended_is_409_saying_why(
    app: UiApp, runs: Runs, kube: UserKube
) -> None:
    ended = run_body(phase="Succeeded")
    kube.cluster.put(ended)
    runs.put(ended)

    answer = await app(act("cancel"))

    assert answer.status == 409
    assert "is already Succeeded: there is nothing to cancel" in text(answer)
    assert kube.cluster.patches == []


@pytest.mark.usefixtures("running", "operator")
@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (KubeApiError("PATCH: 403 forbidden", status=403), 403, "refused it: PATCH: 403"),
        (KubeApiError("connection reset", status=0), 503, "could not be reached; nothing was"),
        (KubeApiError("PATCH: 500", status=500), 503, "refused it: PATCH: 500"),
    ],
)
async def test_what_the_api_server_answers_the_user_is_shown(
    app: UiApp, kube: UserKube, error: KubeApiError, status: int, says: str
) -> None:
    async def refuse(*args: Any, **kwargs: Mapping[str, Any]) -> dict[str, Any]:
        raise error

    kube.cluster.merge_patch = refuse  # type: ignore[method-assign]

    answer = await app(act("suspend"))

    assert answer.status == status
    assert says in text(answer)


@pytest.mark.usefixtures("running")
async def test_a_user_without_patch_is_refused_403_naming_it_and_nothing_is_sent(
    app: UiApp, kube: UserKube
) -> None:
    answer = await app(act("cancel"))

    assert answer.status == 403
    assert "may not patch workflowruns.stepline.io &#x27;trade-x7k2p&#x27;" in text(answer)
    assert kube.tokens == []


@pytest.mark.usefixtures("running", "operator")
@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
async def test_an_action_posted_from_another_site_is_refused_and_not_done(
    app: UiApp, kube: UserKube, origin: str
) -> None:
    answer = await app(act("cancel", origin=origin))

    assert answer.status == 403
    assert kube.tokens == []


@pytest.mark.usefixtures("running", "operator")
async def test_an_action_without_the_cookie_sends_to_the_sign_in_page_and_is_not_done(
    app: UiApp, kube: UserKube
) -> None:
    answer = await app(post(ACTIONS, "action=cancel", cookie=None, origin=ORIGIN))

    assert answer.status == 303
    assert str(header(answer, "Location")).startswith("/ui/login?next=")
    assert kube.tokens == []


@pytest.mark.usefixtures("running")
async def test_without_invoke_authentication_actions_are_refused_and_their_buttons_say_why(
    make_app: Callable[..., UiApp], kube: UserKube
) -> None:
    app = make_app(authorizer_=None)

    answer = await app(post(ACTIONS, "action=cancel", cookie=None, origin=ORIGIN))
    page = text(await app(get(RUN, cookie=None)))

    assert answer.status == 403
    assert "STEPLINE_INVOKE_AUTH=false" in text(answer)
    assert kube.tokens == []
    assert "STEPLINE_INVOKE_AUTH=false" in str(reason_of(page, "cancel"))
    assert "STEPLINE_INVOKE_AUTH=false" in str(reason_of(page, "suspend"))


@pytest.mark.usefixtures("running", "operator")
@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("action=delete", "action &#x27;delete&#x27; is not one of: cancel, suspend, resume"),
        ("", "action &#x27;&#x27; is not one of"),
        ("action=cancel&force=true", "unknown query parameter &#x27;force&#x27;"),
        ("action=cancel&action=suspend", "&#x27;action&#x27; is given more than once"),
    ],
)
async def test_a_form_that_is_not_an_action_is_400_naming_what_is_wrong(
    app: UiApp, kube: UserKube, form: str, says: str
) -> None:
    answer = await app(post(ACTIONS, form, origin=ORIGIN))

    assert answer.status == 400
    assert says in text(answer)
    assert kube.tokens == []


@pytest.mark.usefixtures("operator")
async def test_an_action_on_a_run_that_does_not_exist_is_404(app: UiApp, kube: UserKube) -> None:
    answer = await app(act("cancel"))

    assert answer.status == 404
    assert kube.tokens == []


async def test_actions_are_posted_not_fetched(app: UiApp) -> None:
    answer = await app(get(ACTIONS))

    assert answer.status == 405
    assert header(answer, "Allow") == "POST"
