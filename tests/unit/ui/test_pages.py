"""The web view's pages through `UiApp`, from a fake catalog (the finance and manufacturing
examples, run rows, run bodies) with the real `Authorizer`: what each shows, what each needs of
the user (RBAC per page), paging and filters, the run page's timeline and its buttons."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from stepline.api import LatencyQuantiles, RunPhase, RunStatistics, ServiceStep
from stepline.errors import KubeApiError
from stepline.ui.app import UiApp
from stepline.ui.catalog import RunRow
from stepline.ui.live import RunFeed
from tests.unit.gateway.reviewers import Clock
from tests.unit.ui.cluster import (
    NOW,
    OPERATOR,
    WAITING,
    Reviewer,
    Runs,
    at,
    data_rows,
    example_workflow,
    get,
    reason_of,
    row,
    run_body,
    succeeded,
    text,
)

# The home page and the workflows


async def test_home_lists_the_namespaces_the_user_may_list_with_their_workflows(
    make_app: Callable[..., UiApp],
) -> None:
    app = make_app(workflows=[example_workflow("finance"), example_workflow("manufacturing"),
                              example_workflow("finance", namespace="bank")])  # fmt: skip

    page = text(await app(get("/ui/")))

    assert data_rows(page, "data-namespace") == ["shop"]  # not bank: no list there
    assert '<td>2</td><td><a href="/ui/namespaces/shop/runs">runs</a></td>' in page


async def test_the_workflows_page_has_a_row_per_workflow_with_its_readiness(app: UiApp) -> None:
    answer = await app(get("/ui/namespaces/shop/workflows"))

    page = text(answer)
    assert answer.status == 200
    assert data_rows(page, "data-workflow") == ["production-shift", "trade"]
    assert '<td class="ready"><span class="ready-unknown">Unknown</span></td>' in page
    assert '<td class="success-rate">-</td>' in page


async def test_the_workflows_page_shows_the_run_statistics_of_the_run_watch_not_yet_written(
    app: UiApp, runs: Runs
) -> None:
    # The Workflow's status has none yet (retention writes them every 30 s); the watch has.
    runs.figures["trade"] = RunStatistics(
        total=4, active=1, succeeded=2, failed=1, success_rate=2 / 3,
        latency_seconds=LatencyQuantiles(p50=1.5, p90=2.0, p99=2.5),
    )  # fmt: skip

    page = text(await app(get("/ui/namespaces/shop/workflows")))

    trade = page.split('data-workflow="trade"')[1].split("</tr>")[0]
    assert "<td>4 (1 active)</td>" in trade
    assert '<td class="success-rate">67%</td>' in trade
    assert "<td>1.50s</td><td>2.00s</td><td>2.50s</td>" in trade


async def test_a_namespace_without_workflows_is_404_to_a_user_who_may_list_there(
    app: UiApp, reviewer: Reviewer, clock: Clock
) -> None:
    refused = await app(get("/ui/namespaces/empty/workflows"))
    reviewer.allow(("list", "workflows", ""), namespace="empty")
    clock.now += 2  # the refusal is kept denied_ttl seconds

    answer = await app(get("/ui/namespaces/empty/workflows"))

    assert refused.status == 403  # no telling who may not list whether a namespace exists
    assert answer.status == 404
    assert "There is no workflow in namespace &#x27;empty&#x27;" in text(answer)


async def test_a_namespace_the_operator_does_not_watch_is_404_naming_those_it_watches(
    make_app: Callable[..., UiApp],
) -> None:
    app = make_app(watched=("shop", "bank"))

    answer = await app(get("/ui/namespaces/other/runs"))

    assert answer.status == 404
    assert "does not watch namespace &#x27;other&#x27; (it watches shop, bank)" in text(answer)


async def test_pages_read_from_cold_caches_say_they_may_be_incomplete(
    make_app: Callable[..., UiApp],
) -> None:
    app = make_app(warm=False)

    page = text(await app(get("/ui/namespaces/shop/workflows")))

    assert '<p id="notice" role="status">The operator is still reading the cluster' in page


async def test_a_user_without_list_workflows_gets_403_naming_the_permission(
    make_app: Callable[..., UiApp], reviewer: Reviewer
) -> None:
    reviewer.revoke("list", "workflows")
    app = make_app()

    answer = await app(get("/ui/namespaces/shop/workflows"))

    assert answer.status == 403
    assert "may not list workflows.stepline.io in namespace &#x27;shop&#x27;" in text(answer)
    assert "data-workflow" not in text(answer)


async def test_the_workflow_page_draws_its_steps_with_their_servicesteps_replicas(
    make_app: Callable[..., UiApp], runs: Runs
) -> None:
    validation = ServiceStep.from_body({
        "apiVersion": "stepline.io/v1alpha1", "kind": "ServiceStep",
        "metadata": {"name": "user-validation", "namespace": "shop"},
        "spec": {"image": "stepline/finance-user-validation:0.1.0", "port": 8080},
        "status": {"readyReplicas": 2, "desiredReplicas": 3},
    })  # fmt: skip
    runs.rows = [row("trade-a", minutes_ago=1), row("shift-a", minutes_ago=2,
                                                    workflow="production-shift")]  # fmt: skip
    app = make_app(service_steps=[validation])

    page = text(await app(get("/ui/namespaces/shop/workflows/trade")))

    assert re.findall(r'data-node="([^"]+)"', page) == ["validation", "order", "settlement"]
    assert re.findall(r'data-edge="([^"]+)"', page) == ["validation-&gt;order",
                                                        "order-&gt;settlement"]  # fmt: skip
    assert "<td>user-validation</td><td>2/3</td>" in page
    assert data_rows(page, "data-run") == ["trade-a"]


async def test_a_workflow_that_does_not_exist_is_404(app: UiApp) -> None:
    answer = await app(get("/ui/namespaces/shop/workflows/nothing"))

    assert answer.status == 404
    assert "There is no workflow &#x27;nothing&#x27;" in text(answer)


# The runs


async def test_a_user_without_list_workflowruns_gets_403_naming_the_permission(
    make_app: Callable[..., UiApp], reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.revoke("list", "workflowruns")
    runs.rows = [row("trade-a", minutes_ago=1)]
    app = make_app()

    answer = await app(get("/ui/namespaces/shop/runs"))

    page = text(answer)
    assert answer.status == 403
    assert "may not list workflowruns.stepline.io in namespace &#x27;shop&#x27;" in page
    assert "trade-a" not in page


@pytest.fixture
def sixty(runs: Runs) -> list[RunRow]:
    """60 failed runs of trade, one a minute, and 5 succeeded ones of production-shift."""
    runs.rows = [row(f"trade-{i:02d}", minutes_ago=i, phase=RunPhase.FAILED) for i in range(60)]
    runs.rows += [row(f"shift-{i}", minutes_ago=i, workflow="production-shift")
                  for i in range(5)]  # fmt: skip
    return runs.rows


async def test_the_runs_are_newest_first_fifty_a_page(app: UiApp, sixty: list[RunRow]) -> None:
    page = text(await app(get("/ui/namespaces/shop/runs")))

    shown = data_rows(page, "data-run")
    assert len(shown) == 50
    assert shown[:4] == ["trade-00", "shift-0", "trade-01", "shift-1"]
    assert '<p id="runs-count">65 runs; page 1 of 2</p>' in page


async def test_filtered_runs_are_paged_and_the_links_keep_the_filters(
    app: UiApp, sixty: list[RunRow]
) -> None:
    first = text(await app(get("/ui/namespaces/shop/runs", "workflow=trade&phase=Failed")))
    second = text(await app(get("/ui/namespaces/shop/runs", "workflow=trade&phase=Failed&page=2")))

    assert len(data_rows(first, "data-run")) == 50
    assert data_rows(second, "data-run") == [f"trade-{i}" for i in range(50, 60)]
    assert 'href="/ui/namespaces/shop/runs?workflow=trade&amp;phase=Failed&amp;page=2" ' \
           'rel="next"' in first  # fmt: skip
    assert 'rel="prev"' not in first
    assert 'href="/ui/namespaces/shop/runs?workflow=trade&amp;phase=Failed" rel="prev"' in second
    assert 'rel="next"' not in second
    assert '<p id="runs-count">60 runs; page 2 of 2</p>' in second


async def test_the_filter_form_shows_the_chosen_filters(app: UiApp, sixty: list[RunRow]) -> None:
    page = text(await app(get("/ui/namespaces/shop/runs", "workflow=trade&phase=Failed&since=1h")))

    assert '<form id="run-filters" method="get"' in page
    assert '<option value="trade" selected>trade</option>' in page
    assert '<option value="production-shift">' in page
    assert '<option value="Failed" selected>Failed</option>' in page
    assert '<option value="1h" selected>the last 1h</option>' in page


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("phase=Succeeded", [*(f"shift-{i}" for i in range(5)), "old", "unborn"]),
        ("workflow=production-shift&since=1h", [f"shift-{i}" for i in range(5)]),
        ("workflow=trade&since=1h", [f"trade-{i:02d}" for i in range(50)]),
        ("phase=Running", []),
    ],
)
async def test_runs_are_filtered_by_workflow_phase_and_age(
    app: UiApp, runs: Runs, sixty: list[RunRow], query: str, shown: list[str]
) -> None:
    runs.rows.append(RunRow("old", "trade", RunPhase.SUCCEEDED, NOW - timedelta(days=8), None))
    runs.rows.append(RunRow("unborn", "trade", RunPhase.SUCCEEDED, None, None))

    page = text(await app(get("/ui/namespaces/shop/runs", query)))

    assert data_rows(page, "data-run") == shown
    if not shown:
        assert '<p class="empty" id="runs-empty">No run matches these filters.</p>' in page


async def test_runs_of_any_age_include_those_without_a_creation_time_last(
    app: UiApp, runs: Runs
) -> None:
    runs.rows = [RunRow("unborn", "trade", RunPhase.PENDING, None, None),
                 row("trade-a", minutes_ago=1)]  # fmt: skip

    page = text(await app(get("/ui/namespaces/shop/runs")))

    assert data_rows(page, "data-run") == ["trade-a", "unborn"]


@pytest.mark.parametrize(
    ("query", "named"),
    [("phase=Done", "phase &#x27;Done&#x27; is not one of"),
     ("since=2h", "since &#x27;2h&#x27; is not one of: 1h, 24h, 7d"),
     ("page=0", "page &#x27;0&#x27; is not a whole number"),
     ("page=%C2%B2", "page &#x27;²&#x27; is not a whole number"),
     ("workflow=A", "workflow &#x27;A&#x27; is not a Kubernetes name"),
     ("sort=name", "unknown query parameter &#x27;sort&#x27;")],
)  # fmt: skip
async def test_a_filter_that_is_not_one_listed_is_400_naming_the_parameter(
    app: UiApp, query: str, named: str
) -> None:
    answer = await app(get("/ui/namespaces/shop/runs", query))

    assert answer.status == 400
    assert f'<p id="problem" role="alert">{named}' in text(answer)


# One run

STEPS_OUT_OF_ORDER = run_body(
    {"name": "audit", "phase": "Pending"},
    succeeded("settlement", 0.3, 0.2, {"settled": True}),
    succeeded("validation", 0.0, 0.1, {"approved": True}),
    {"name": "order", "phase": "Skipped", "startedAt": at(0.1),
     "message": "when steps.validation.output.approved was false"},
    phase="Running",
)  # fmt: skip


async def test_a_run_page_lists_its_steps_in_the_order_they_started_with_their_phases(
    app: UiApp, runs: Runs
) -> None:
    runs.put(STEPS_OUT_OF_ORDER)

    answer = await app(get("/ui/namespaces/shop/runs/trade-x7k2p"))

    page = text(answer)
    assert answer.status == 200
    assert data_rows(page, "data-step") == ["validation", "order", "settlement", "audit"]
    phases = re.findall(r'<tr data-step="[^"]+" class="step-[a-z]+"><th scope="row">[^<]+</th>'
                        r'<td class="phase"><span class="[^"]+">([A-Za-z]+)<', page)  # fmt: skip
    assert phases == ["Succeeded", "Skipped", "Succeeded", "Pending"]
    assert '<span class="phase phase-running" id="run-phase">Running</span>' in page
    assert '<span id="live" role="status">live</span>' in page
    assert 'data-updates="/ui/namespaces/shop/runs/trade-x7k2p/updates" data-version="7"' in page
    assert "&quot;qty&quot;: 3" in page  # its input


async def test_a_run_page_follows_its_run_for_the_live_updates(
    app: UiApp, runs: Runs, feed: RunFeed
) -> None:
    runs.put(STEPS_OUT_OF_ORDER)

    await app(get("/ui/namespaces/shop/runs/trade-x7k2p"))

    followed = feed.latest("shop", "trade-x7k2p")
    assert followed is not None
    assert followed.version == "7"


async def test_a_finished_run_says_so_and_its_cancel_is_disabled_saying_why(
    make_app: Callable[..., UiApp], reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.allow(*OPERATOR)
    runs.put(run_body(succeeded("validation", 0, 0.1, True), phase="Succeeded",
                      finishedAt=at(1), durationSeconds=1.0))  # fmt: skip

    page = text(await make_app()(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert '<span id="live" role="status">finished</span>' in page
    assert reason_of(page, "cancel") == "The run has ended (Succeeded)"
    assert reason_of(page, "suspend") == "The run has ended (Succeeded)"
    assert reason_of(page, "resume") == "The run is not suspended"
    assert "succeeded: there is nothing to rerun" in str(reason_of(page, "rerun"))


async def test_a_user_without_patch_sees_cancel_disabled_with_the_permission_named(
    app: UiApp, runs: Runs
) -> None:
    runs.put(STEPS_OUT_OF_ORDER)

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    for action in ("cancel", "suspend"):
        reason = reason_of(page, action)
        assert reason is not None
        assert "may not patch workflowruns.stepline.io &#x27;trade-x7k2p&#x27;" in reason


async def test_a_user_with_patch_may_cancel_and_suspend_a_running_run(
    app: UiApp, reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.allow(*OPERATOR)
    runs.put(STEPS_OUT_OF_ORDER)

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert reason_of(page, "cancel") is None
    assert reason_of(page, "suspend") is None
    assert '<form method="post" action="/ui/namespaces/shop/runs/trade-x7k2p/actions"' in page


async def test_a_suspended_run_may_be_resumed_and_not_suspended_again(
    app: UiApp, reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.allow(*OPERATOR)
    suspended = runs.put(run_body(phase="Suspended"))
    suspended["spec"]["suspend"] = True

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert reason_of(page, "resume") is None
    assert reason_of(page, "suspend") == "The run is already suspended"


async def test_a_run_waiting_for_a_person_offers_approve_and_reject_for_its_step(
    app: UiApp, reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.allow(("create", "approvals", ""), ("approve", "workflows", "trade"))
    runs.put(WAITING)

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert reason_of(page, "approve") is None
    assert reason_of(page, "reject") is None
    assert page.count('<input type="hidden" name="step" value="sign-off">') == 2


async def test_approving_needs_the_approve_verb_on_the_workflow(
    app: UiApp, reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.allow(("create", "approvals", ""))
    runs.put(WAITING)

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert "may not approve workflows.stepline.io &#x27;trade&#x27;" in str(
        reason_of(page, "approve")
    )


async def test_a_run_of_a_workflow_without_approval_steps_has_no_approve_button(
    app: UiApp, runs: Runs
) -> None:
    runs.put(STEPS_OUT_OF_ORDER)

    page = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p")))

    assert 'value="approve"' not in page
    assert 'value="reject"' not in page


async def test_the_notice_of_a_done_action_is_shown_and_an_unknown_one_is_400(
    app: UiApp, runs: Runs
) -> None:
    runs.put(STEPS_OUT_OF_ORDER)

    done = text(await app(get("/ui/namespaces/shop/runs/trade-x7k2p", "done=cancel")))
    unknown = await app(get("/ui/namespaces/shop/runs/trade-x7k2p", "done=%3Cb%3E"))

    assert '<p id="notice" role="status">Cancel requested' in done
    assert unknown.status == 400
    assert "done &#x27;&lt;b&gt;&#x27; is not one of" in text(unknown)


async def test_a_run_that_does_not_exist_is_404(app: UiApp, runs: Runs) -> None:
    answer = await app(get("/ui/namespaces/shop/runs/gone"))

    assert answer.status == 404
    assert "There is no run &#x27;gone&#x27; in namespace &#x27;shop&#x27;" in text(answer)


async def test_a_run_that_cannot_be_read_is_503_saying_so(app: UiApp, runs: Runs) -> None:
    runs.failing = KubeApiError("timed out", status=0)

    answer = await app(get("/ui/namespaces/shop/runs/trade-x7k2p"))

    assert answer.status == 503
    assert "could not read run &#x27;trade-x7k2p&#x27;" in text(answer)
    assert "(no answer)" in text(answer)


async def test_a_user_without_get_on_the_run_gets_403_and_the_run_is_not_read(
    make_app: Callable[..., UiApp], reviewer: Reviewer, runs: Runs
) -> None:
    reviewer.revoke("get", "workflowruns")
    runs.put(STEPS_OUT_OF_ORDER)

    answer = await make_app()(get("/ui/namespaces/shop/runs/trade-x7k2p"))

    assert answer.status == 403
    assert "may not get workflowruns.stepline.io &#x27;trade-x7k2p&#x27;" in text(answer)
    assert runs.reads == []


async def test_a_run_whose_status_cannot_be_read_gets_a_page_saying_so(
    app: UiApp, runs: Runs
) -> None:
    runs.put(run_body({"name": "order", "phase": "Failed", "error": {"reason": "R" * 65,
                                                                     "message": "m"}}))  # fmt: skip

    answer = await app(get("/ui/namespaces/shop/runs/trade-x7k2p"))

    assert answer.status in (500, 502)
    assert '<p id="problem" role="alert">' in text(answer)
