"""Every field a CRD documents under `spec` is honoured: each is mapped, in `PROOFS`, to the tests
that prove what its description promises, and those tests exist.

The table is checked against the committed CRDs (crds/*.yaml, generated from the models), so
this module fails when a spec field is added without a test of its promise, when the table
names a field that no longer exists, or when it names a test function that its file (read with
`ast`, never imported) does not define at module level. A field path reads
`Workflow.spec.steps[].dependsOn`: the kind, then the field, `[]` for the items of a list.

A field in `MIRRORS` copies a Kubernetes type field for field; its one entry covers everything
beneath it, because its test shows the whole subtree reaching the built object. Every other
field, leaf or not, has an entry of its own. `KNOWN_UNTESTED` holds the fields whose promise no
test proves yet (it is reported as an expected failure while it is not empty).

The second half holds the tests written for promises no other test proved, the last two of
them where the code did not keep the promise (a run waiting for a slot had no phase; a run out
of time while waiting for a ready step failed StepFailed, not TimedOut) until they were fixed.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from stepline.api import ServiceStep, StepPhase, Workflow, WorkflowRun
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowruns.memory import RunMemory
from stepline.controllers.workflowruns.runner import RunProgress, drive_run
from stepline.controllers.workflows.memory import WorkflowMemory
from stepline.engine import (
    AiohttpTransport,
    Executor,
    RunRequest,
    RunStatus,
    StepIndex,
    build_plan,
)
from stepline.observability import Metrics
from stepline.resources import build_deployment
from tests.unit.engine.stepservers import (
    Answer,
    FakeClock,
    StepServer,
    build_service_step,
    build_workflow,
)
from tests.unit.resources.samples import make_step

REPO = Path(__file__).resolve().parents[3]
CRD_FILES = ("stepline.io_servicesteps.yaml", "stepline.io_workflows.yaml",
             "stepline.io_workflowruns.yaml", "stepline.io_workflowschedules.yaml",
             "stepline.io_approvals.yaml")  # fmt: skip
HERE = Path(__file__).resolve().relative_to(REPO).as_posix()  # node ids of the tests below

# Fields whose subfields mirror a Kubernetes type field for field (see the module docstring).
MIRRORS = frozenset(
    {
        "ServiceStep.spec.env",
        "ServiceStep.spec.probes",
        "ServiceStep.spec.resources",
        "ServiceStep.spec.scaling.behavior",
    }
)

# Fields whose promise needs a cluster to prove and has no test yet. Keep it empty.
KNOWN_UNTESTED: frozenset[str] = frozenset()

PROOFS: dict[str, tuple[str, ...]] = {
    "Approval.spec.decidedBy": (
        "tests/integration/test_approvals.py::test_an_approver_is_admitted_and_stamped_as_the_author_whatever_the_client_wrote",
    ),
    "Approval.spec.decidedBy.uid": (
        "tests/integration/test_approvals.py::test_an_approver_is_admitted_and_stamped_as_the_author_whatever_the_client_wrote",
    ),
    "Approval.spec.decidedBy.username": (
        "tests/integration/test_approvals.py::test_an_approver_is_admitted_and_stamped_as_the_author_whatever_the_client_wrote",
        "tests/integration/test_approvals.py::test_a_service_account_without_approve_is_refused_with_the_policys_message",
    ),
    "Approval.spec.decision": (
        "tests/unit/controllers/approvals/test_judging.py::test_a_recorded_rejection_is_a_warning_with_its_reason_and_counted_rejected",
        "tests/unit/controllers/approvals/test_index.py::test_only_a_recorded_approval_decides_a_step",
    ),
    "Approval.spec.reason": (
        "tests/integration/test_approvals.py::test_a_rejection_without_a_reason_is_refused",
        "tests/unit/api/test_approvals.py::test_a_reason_longer_than_1024_characters_is_refused",
    ),
    "Approval.spec.runRef": (
        "tests/unit/controllers/approvals/test_acceptance.py::test_a_missing_run_is_run_not_found",
        "tests/integration/test_approvals.py::test_stepline_approve_on_a_waiting_run_is_recorded_owned_by_the_run_and_announced",
    ),
    "Approval.spec.step": (
        "tests/unit/controllers/approvals/test_acceptance.py::test_a_run_that_does_not_wait_at_the_step_is_not_waiting",
        "tests/unit/controllers/approvals/test_index.py::test_other_steps_runs_and_namespaces_are_apart",
    ),
    "Approval.spec.workflowRef": (
        "tests/unit/controllers/approvals/test_acceptance.py::test_an_approval_naming_another_workflow_than_the_runs_is_a_mismatch",
        "tests/integration/test_approvals.py::test_approve_on_one_workflow_reaches_no_other",
    ),
    "ServiceStep.spec.adaptiveTimeout": (
        "tests/unit/engine/test_executing.py::test_an_adaptive_timeout_cuts_a_call_at_a_multiple_of_the_steps_p99",
        "tests/unit/engine/test_executing.py::test_a_workflow_steps_own_timeout_wins_over_an_adaptive_one",
    ),
    "ServiceStep.spec.adaptiveTimeout.floorSeconds": (
        "tests/unit/engine/test_executing.py::test_an_adaptive_timeout_cuts_a_call_at_a_multiple_of_the_steps_p99",
    ),
    "ServiceStep.spec.adaptiveTimeout.multiplier": (
        "tests/unit/engine/test_executing.py::test_an_adaptive_timeout_cuts_a_call_at_a_multiple_of_the_steps_p99",
    ),
    "ServiceStep.spec.args": (
        "tests/unit/resources/test_deployments.py::test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env",
        "tests/unit/resources/test_deployments.py::test_a_container_without_command_args_or_env_leaves_them_to_the_image",
    ),
    "ServiceStep.spec.command": (
        "tests/unit/resources/test_deployments.py::test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env",
        "tests/unit/resources/test_deployments.py::test_a_container_without_command_args_or_env_leaves_them_to_the_image",
    ),
    # Mirror of core/v1 EnvVar (value, valueFrom.secretKeyRef / configMapKeyRef), copied whole
    # with to_wire(); the test shows a value and a secretKeyRef reaching the container as given.
    "ServiceStep.spec.env": (
        "tests/unit/resources/test_deployments.py::test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env",
        "tests/unit/resources/test_deployments.py::test_a_container_without_command_args_or_env_leaves_them_to_the_image",
    ),
    "ServiceStep.spec.image": (
        "tests/unit/resources/test_deployments.py::test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env",
        "tests/unit/api/test_models.py::test_a_service_step_spec_is_checked_by_the_same_rules_as_at_the_api_server",
        "tests/integration/test_controllers_servicesteps.py::test_a_service_step_becomes_a_deployment_service_and_autoscaler_and_turns_ready",
    ),
    "ServiceStep.spec.path": (
        "tests/unit/resources/test_labels.py::test_the_endpoint_is_the_in_cluster_service_url_with_port_and_path",
        "tests/unit/resources/test_labels.py::test_the_endpoint_defaults_to_port_8080_and_the_root_path",
        "tests/unit/engine/test_endpoints.py::test_a_deployed_step_is_called_at_its_service_in_the_cluster",
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
    ),
    "ServiceStep.spec.port": (
        "tests/unit/resources/test_labels.py::test_the_endpoint_is_the_in_cluster_service_url_with_port_and_path",
        "tests/unit/resources/test_labels.py::test_the_endpoint_defaults_to_port_8080_and_the_root_path",
        "tests/unit/resources/test_services_and_autoscalers.py::test_the_service_selects_the_steps_pods_on_its_port_by_name",
        "tests/unit/resources/test_deployments.py::test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env",
    ),
    # Mirror of core/v1 HTTPGetAction probes, field for field; the new test sets every field of
    # both probes, the older ones show the defaults and the step's port as the default port.
    "ServiceStep.spec.probes": (
        f"{HERE}::test_every_probe_field_given_in_the_spec_reaches_the_container",
        "tests/unit/resources/test_deployments.py::test_probes_given_in_the_spec_replace_the_defaults",
        "tests/unit/resources/test_deployments.py::test_default_probes_check_healthz_on_the_named_port",
    ),
    # Mirror of core/v1 ResourceRequirements (cpu and memory), merged over the defaults per
    # resource with to_wire().
    "ServiceStep.spec.resources": (
        "tests/unit/resources/test_deployments.py::test_resources_in_the_spec_are_merged_over_the_defaults_per_resource",
        "tests/unit/resources/test_deployments.py::test_resources_default_to_a_cpu_request_so_the_autoscaler_can_work",
    ),
    "ServiceStep.spec.retry": (
        "tests/unit/engine/test_executing.py::test_a_step_answering_500_then_200_succeeds_with_two_attempts",
        "tests/unit/engine/test_executing.py::test_a_run_cancelled_while_waiting_to_retry_ends_cancelled_at_that_step",
        f"{HERE}::test_a_workflow_steps_retry_limit_replaces_the_service_steps_and_0_calls_once",
    ),
    "ServiceStep.spec.retry.backoff": (
        "tests/unit/engine/test_calling.py::test_backoff_grows_by_its_factor_up_to_its_max_without_really_sleeping",
        "tests/unit/engine/test_executing.py::test_a_run_cancelled_while_waiting_to_retry_ends_cancelled_at_that_step",
    ),
    "ServiceStep.spec.retry.backoff.factor": (
        "tests/unit/engine/test_retrying.py::test_the_shortest_waits_grow_by_the_factor_and_stop_at_the_max",
        "tests/unit/engine/test_calling.py::test_backoff_grows_by_its_factor_up_to_its_max_without_really_sleeping",
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
    ),
    "ServiceStep.spec.retry.backoff.initialSeconds": (
        "tests/unit/engine/test_retrying.py::test_no_wait_is_shorter_than_the_policy_promises_or_longer_than_its_max",
        "tests/unit/engine/test_calling.py::test_backoff_grows_by_its_factor_up_to_its_max_without_really_sleeping",
        "tests/unit/engine/test_calling.py::test_jitter_only_lengthens_each_wait_and_never_past_the_max",
    ),
    "ServiceStep.spec.retry.backoff.maxSeconds": (
        "tests/unit/engine/test_retrying.py::test_the_shortest_waits_grow_by_the_factor_and_stop_at_the_max",
        "tests/unit/engine/test_retrying.py::test_jitter_adds_at_most_a_fifth_and_never_passes_the_max",
        "tests/unit/engine/test_calling.py::test_a_retry_after_is_honoured_up_to_the_policys_max_wait",
    ),
    "ServiceStep.spec.retry.limit": (
        "tests/unit/engine/test_calling.py::test_retries_stop_at_the_limit_and_the_message_counts_the_attempts",
        f"{HERE}::test_a_workflow_steps_retry_limit_replaces_the_service_steps_and_0_calls_once",
    ),
    "ServiceStep.spec.retry.retryOn": (
        "tests/unit/engine/test_calling.py::test_a_failure_missing_from_retry_on_is_not_retried",
        "tests/unit/engine/test_calling.py::test_a_4xx_is_never_retried",
        "tests/unit/engine/test_calling.py::test_429_is_retried_as_too_many_requests",
        "tests/unit/engine/test_calling.py::test_a_connection_refused_is_retried_and_reported_as_a_connection_error",
        "tests/unit/engine/test_calling.py::test_a_2xx_whose_body_is_not_json_is_an_invalid_response_and_not_retried",
        "tests/unit/engine/test_retrying.py::test_retry_on_narrows_what_is_retried",
        "tests/integration/test_runs.py::test_a_step_that_always_times_out_fails_the_run_naming_the_step",
    ),
    "ServiceStep.spec.scaling": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_without_scaling_the_autoscaler_keeps_one_to_five_replicas_at_80_percent",
    ),
    # Mirror of autoscaling/v2 HorizontalPodAutoscalerBehavior, copied as it is with to_wire();
    # the tests set every field in both directions, and one direction alone.
    "ServiceStep.spec.scaling.behavior": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_the_scaling_behavior_is_copied_as_autoscaling_v2_spells_it",
        "tests/unit/resources/test_services_and_autoscalers.py::test_a_behavior_in_one_direction_only_leaves_the_other_to_kubernetes",
    ),
    "ServiceStep.spec.scaling.maxReplicas": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_the_autoscaler_scales_the_steps_deployment_on_cpu_within_the_bounds",
        "tests/unit/resources/test_deployments.py::test_the_replica_count_is_left_to_the_autoscaler",
    ),
    "ServiceStep.spec.scaling.metrics": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_in_flight_and_calls_per_second_become_external_metrics_on_the_operators_gauge",
        "tests/unit/controllers/servicesteps/test_scaling.py::test_reactive_scaling_follows_the_load_now_for_each_metric_it_names",
        "tests/integration/test_scaling.py::test_in_flight_scaling_moves_replicas_through_the_external_metrics_api",
    ),
    "ServiceStep.spec.scaling.metrics[].target": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_cpu_among_the_metrics_takes_its_target_or_the_percentage_field",
        "tests/integration/test_scaling.py::test_in_flight_scaling_moves_replicas_through_the_external_metrics_api",
    ),
    "ServiceStep.spec.scaling.metrics[].type": (
        "tests/integration/test_scaling.py::test_calls_per_second_scaling_moves_replicas_with_the_arrival_rate",
        "tests/unit/resources/test_services_and_autoscalers.py::test_in_flight_and_calls_per_second_become_external_metrics_on_the_operators_gauge",
        "tests/unit/resources/test_services_and_autoscalers.py::test_cpu_among_the_metrics_takes_its_target_or_the_percentage_field",
    ),
    "ServiceStep.spec.scaling.minReplicas": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_the_autoscaler_scales_the_steps_deployment_on_cpu_within_the_bounds",
        "tests/unit/resources/test_deployments.py::test_the_replica_count_is_left_to_the_autoscaler",
    ),
    "ServiceStep.spec.scaling.predictive": (
        "tests/unit/controllers/servicesteps/test_scaling.py::test_predictive_scaling_waits_for_history_and_says_so",
        "tests/unit/controllers/servicesteps/test_scaling.py::test_predictive_scaling_leads_a_ramp_by_the_lead_time_and_never_below_now",
        "tests/unit/controllers/servicesteps/test_scaling.py::test_a_forecast_never_asks_for_more_than_max_replicas_at_the_target",
    ),
    "ServiceStep.spec.scaling.targetCPUUtilizationPercentage": (
        "tests/unit/resources/test_services_and_autoscalers.py::test_the_autoscaler_scales_the_steps_deployment_on_cpu_within_the_bounds",
        "tests/unit/resources/test_deployments.py::test_resources_default_to_a_cpu_request_so_the_autoscaler_can_work",
    ),
    "ServiceStep.spec.timeoutSeconds": (
        "tests/unit/engine/test_executing.py::test_a_step_that_always_times_out_fails_the_run_as_timed_out_naming_the_step",
        f"{HERE}::test_a_workflow_steps_timeout_replaces_the_service_steps",
    ),
    "ServiceStep.spec.url": (
        "tests/unit/engine/test_endpoints.py::test_an_external_step_is_called_at_its_url",
        "tests/unit/resources/test_labels.py::test_the_endpoint_of_an_external_step_is_its_url",
        "tests/unit/resources/test_deployments.py::test_a_step_with_a_url_has_no_deployment",
        "tests/unit/api/test_models.py::test_a_service_step_spec_is_checked_by_the_same_rules_as_at_the_api_server",
        "tests/integration/test_controllers_servicesteps.py::test_an_external_step_is_ready_while_its_url_answers_and_not_after_it_stops",
    ),
    "Workflow.spec.checkpointIntervalSeconds": (
        f"{HERE}::test_without_a_checkpoint_interval_each_step_is_written_before_the_next_starts",
        f"{HERE}::test_a_checkpoint_interval_writes_the_steps_finished_within_it_together_in_time",
        "tests/integration/test_runs.py::test_a_checkpoint_interval_writes_the_steps_finished_within_it_together",
        "tests/unit/engine/test_executing.py::test_a_resumed_run_calls_only_the_unfinished_step_again_under_the_same_key",
    ),
    # Contradicted in part: runs waiting for a slot have no phase, not Pending (see the strict
    # expected failure below).
    "Workflow.spec.concurrency": (
        f"{HERE}::test_runs_over_the_workflows_concurrency_wait_for_a_slot",
        f"{HERE}::test_a_run_waiting_for_a_slot_shows_the_pending_phase",
        "tests/unit/engine/test_limiting.py::test_over_the_limit_runs_wait_and_get_slots_first_come_first_served",
        "tests/unit/engine/test_limiting.py::test_a_raised_limit_applies_to_the_next_run",
        "tests/integration/test_invoke.py::test_an_invoke_over_the_concurrency_limit_answers_429",
    ),
    "Workflow.spec.output": (
        "tests/unit/engine/test_executing.py::test_the_output_expression_shapes_the_run_result_and_sees_skipped_steps",
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
        f"{HERE}::test_without_an_output_expression_a_run_outputs_the_last_output_produced",
    ),
    "Workflow.spec.parallelism": (
        f"{HERE}::test_parallelism_one_runs_the_steps_one_at_a_time_in_plan_order",
        "tests/unit/engine/test_parallel.py::test_parallelism_bounds_the_calls_of_one_run_in_flight",
    ),
    "Workflow.spec.retention": (
        "tests/integration/test_retention.py::test_finished_runs_beyond_the_history_limit_are_deleted_and_counted",
    ),
    "Workflow.spec.retention.failedRuns": (
        "tests/unit/controllers/workflowruns/test_retention.py::test_failed_and_cancelled_runs_share_their_own_limit",
        "tests/integration/test_retention.py::test_finished_runs_beyond_the_history_limit_are_deleted_and_counted",
    ),
    "Workflow.spec.retention.successfulRuns": (
        "tests/unit/controllers/workflowruns/test_retention.py::test_the_oldest_succeeded_runs_beyond_the_limit_are_deleted_oldest_first",
    ),
    "Workflow.spec.retention.ttlSecondsAfterFinished": (
        "tests/unit/controllers/workflowruns/test_retention.py::test_runs_past_their_ttl_are_deleted_even_within_the_limits",
        "tests/unit/controllers/workflowruns/test_retention.py::test_time_until_expiry_counts_down_to_zero_and_is_none_without_a_ttl",
    ),
    "Workflow.spec.steps": (
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
        f"{HERE}::test_depends_on_starts_a_step_once_the_steps_it_names_are_done_others_side_by_side",
        "tests/unit/engine/test_parallel.py::test_independent_steps_run_at_once_and_a_join_gets_their_outputs_by_name",
    ),
    "Workflow.spec.steps[].approval": (
        "tests/unit/engine/test_waiting.py::test_an_approval_step_waits_while_the_other_branches_go_on",
        "tests/unit/engine/test_waiting.py::test_a_decision_approves_the_step_and_the_run_goes_on",
        "tests/unit/engine/test_waiting.py::test_a_rejection_fails_the_step_and_the_run",
    ),
    "Workflow.spec.steps[].approval.message": (
        "tests/unit/engine/test_waiting.py::test_an_approval_step_waits_while_the_other_branches_go_on",
    ),
    "Workflow.spec.steps[].approval.timeoutSeconds": (
        "tests/unit/engine/test_waiting.py::test_no_decision_by_the_deadline_fails_the_step",
    ),
    "Workflow.spec.steps[].compensation": (
        "tests/unit/engine/test_compensation.py::test_a_failed_run_undoes_the_step_that_succeeded_and_says_so",
        "tests/unit/engine/test_compensation.py::test_steps_are_undone_latest_finished_first",
        "tests/unit/engine/test_compensation.py::test_a_failed_compensation_stops_the_undoing_and_fails_the_run_saying_where",
        "tests/unit/engine/test_compensation.py::test_a_cancelled_run_undoes_what_it_did",
        "tests/unit/engine/test_compensation.py::test_the_succeeded_elements_of_a_failed_foreach_step_are_undone_latest_first",
        "tests/unit/engine/test_compensation.py::test_a_run_resumed_while_compensating_goes_on_where_the_undoing_stopped",
    ),
    "Workflow.spec.steps[].compensation.input": (
        "tests/unit/engine/test_compensation.py::test_a_failed_run_undoes_the_step_that_succeeded_and_says_so",
    ),
    "Workflow.spec.steps[].compensation.retry": (
        "tests/unit/engine/test_compensation.py::test_a_compensation_is_retried_under_one_key",
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.backoff": (
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.backoff.factor": (
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.backoff.initialSeconds": (
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.backoff.maxSeconds": (
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.limit": (
        "tests/unit/engine/test_compensation.py::test_a_failed_compensation_stops_the_undoing_and_fails_the_run_saying_where",
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.retry.retryOn": (
        "tests/unit/engine/test_compensation.py::test_a_compensations_own_retry_policy_and_backoff_are_followed",
    ),
    "Workflow.spec.steps[].compensation.stepRef": (
        "tests/unit/engine/test_compensation.py::test_a_failed_run_undoes_the_step_that_succeeded_and_says_so",
    ),
    "Workflow.spec.steps[].compensation.timeoutSeconds": (
        "tests/unit/engine/test_compensation.py::test_a_compensation_call_is_bounded_by_its_own_timeout",
    ),
    "Workflow.spec.steps[].compensation.when": (
        "tests/unit/engine/test_compensation.py::test_a_compensation_whose_when_is_false_is_skipped",
    ),
    "Workflow.spec.steps[].dependsOn": (
        f"{HERE}::test_depends_on_starts_a_step_once_the_steps_it_names_are_done_others_side_by_side",
        "tests/unit/engine/test_parallel.py::test_independent_steps_run_at_once_and_a_join_gets_their_outputs_by_name",
        "tests/unit/engine/test_planning.py::test_a_step_depending_on_a_later_step_is_planned_after_it",
        "tests/unit/api/test_dependencies.py::test_without_depends_on_each_step_waits_for_the_one_before",
    ),
    "Workflow.spec.steps[].forEach": (
        "tests/unit/engine/test_foreach.py::test_each_element_is_one_call_with_its_own_key_and_the_outputs_come_in_order",
        "tests/unit/engine/test_foreach.py::test_a_resumed_step_calls_only_the_elements_not_completed",
    ),
    "Workflow.spec.steps[].forEach.items": (
        "tests/unit/engine/test_foreach.py::test_items_that_are_no_list_or_too_many_fail_the_step_naming_the_field",
        "tests/unit/engine/test_foreach.py::test_an_empty_list_succeeds_with_an_empty_output_and_no_call",
    ),
    "Workflow.spec.steps[].forEach.parallelism": (
        "tests/unit/engine/test_foreach.py::test_elements_in_flight_are_bounded_by_the_steps_parallelism",
    ),
    "Workflow.spec.steps[].input": (
        "tests/unit/engine/test_executing.py::test_an_input_expression_combines_the_run_input_with_an_earlier_steps_output",
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
        "tests/unit/engine/test_executing.py::test_a_step_whose_when_is_false_is_skipped_and_the_next_gets_the_last_output",
        "tests/unit/engine/test_expressions.py::test_the_activation_gives_an_output_only_to_steps_that_produced_one",
    ),
    "Workflow.spec.steps[].name": (
        "tests/unit/engine/test_executing.py::test_an_input_expression_combines_the_run_input_with_an_earlier_steps_output",
        f"{HERE}::test_a_step_whose_name_has_a_dash_is_read_as_steps_of_its_quoted_name",
    ),
    "Workflow.spec.steps[].retry": (
        f"{HERE}::test_a_workflow_steps_retry_limit_replaces_the_service_steps_and_0_calls_once",
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
        "tests/integration/test_runs.py::test_a_step_that_always_times_out_fails_the_run_naming_the_step",
    ),
    "Workflow.spec.steps[].retry.backoff": (
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
        "tests/unit/engine/test_calling.py::test_backoff_grows_by_its_factor_up_to_its_max_without_really_sleeping",
    ),
    "Workflow.spec.steps[].retry.backoff.factor": (
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
        "tests/unit/engine/test_retrying.py::test_the_shortest_waits_grow_by_the_factor_and_stop_at_the_max",
    ),
    "Workflow.spec.steps[].retry.backoff.initialSeconds": (
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
        "tests/unit/engine/test_retrying.py::test_no_wait_is_shorter_than_the_policy_promises_or_longer_than_its_max",
        "tests/unit/engine/test_calling.py::test_jitter_only_lengthens_each_wait_and_never_past_the_max",
    ),
    "Workflow.spec.steps[].retry.backoff.maxSeconds": (
        "tests/unit/engine/test_retrying.py::test_the_shortest_waits_grow_by_the_factor_and_stop_at_the_max",
        "tests/unit/engine/test_retrying.py::test_jitter_adds_at_most_a_fifth_and_never_passes_the_max",
        "tests/unit/engine/test_calling.py::test_a_retry_after_is_honoured_up_to_the_policys_max_wait",
    ),
    "Workflow.spec.steps[].retry.limit": (
        f"{HERE}::test_a_workflow_steps_retry_limit_replaces_the_service_steps_and_0_calls_once",
        "tests/unit/engine/test_calling.py::test_retries_stop_at_the_limit_and_the_message_counts_the_attempts",
        "tests/integration/test_runs.py::test_a_step_that_always_times_out_fails_the_run_naming_the_step",
    ),
    "Workflow.spec.steps[].retry.retryOn": (
        f"{HERE}::test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps",
        "tests/unit/engine/test_calling.py::test_a_failure_missing_from_retry_on_is_not_retried",
        "tests/unit/engine/test_calling.py::test_a_4xx_is_never_retried",
        "tests/unit/engine/test_calling.py::test_a_2xx_whose_body_is_not_json_is_an_invalid_response_and_not_retried",
    ),
    "Workflow.spec.steps[].stepRef": (
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
        "tests/unit/engine/test_executing.py::test_a_missing_servicestep_fails_the_step_with_step_not_found",
        "tests/unit/engine/test_directories.py::test_a_step_is_found_by_namespace_and_name",
    ),
    "Workflow.spec.steps[].timeoutSeconds": (
        f"{HERE}::test_a_workflow_steps_timeout_replaces_the_service_steps",
        "tests/integration/test_runs.py::test_a_step_that_always_times_out_fails_the_run_naming_the_step",
    ),
    "Workflow.spec.steps[].when": (
        "tests/unit/engine/test_executing.py::test_a_step_whose_when_is_false_is_skipped_and_the_next_gets_the_last_output",
        "tests/unit/engine/test_expressions.py::test_a_step_without_when_always_runs",
        "tests/integration/test_runs.py::test_a_step_whose_when_is_false_is_skipped_and_the_next_gets_the_last_output",
    ),
    # Contradicted in part: a run out of time while waiting for a ready step fails StepFailed,
    # not TimedOut (see the strict expected failure below).
    "Workflow.spec.timeoutSeconds": (
        "tests/integration/test_runs.py::test_a_run_over_its_workflow_time_limit_fails_timed_out_naming_the_step",
        "tests/unit/engine/test_executing.py::test_the_run_deadline_cuts_the_call_timeout_and_ends_the_run_as_timed_out",
        "tests/unit/engine/test_calling.py::test_a_backoff_that_would_outlast_the_run_deadline_gives_up_as_timed_out",
        f"{HERE}::test_a_resumed_run_has_only_what_is_left_of_its_workflows_time_limit",
        f"{HERE}::test_a_run_out_of_time_while_waiting_for_a_ready_step_fails_timed_out",
        "tests/integration/test_invoke.py::test_an_invoke_over_the_workflows_time_limit_answers_504_naming_the_step",
        "tests/unit/engine/test_executing.py::test_a_step_that_always_times_out_fails_the_run_as_timed_out_naming_the_step",
    ),
    "WorkflowRun.spec.cancel": (
        "tests/unit/engine/test_executing.py::test_a_run_cancelled_between_steps_ends_cancelled_without_calling_further_steps",
        "tests/integration/test_runs.py::test_cancelling_a_run_during_a_slow_step_stops_it_before_the_next_step",
        "tests/integration/test_runs.py::test_cancelling_a_run_waiting_to_retry_ends_it_without_waiting_out_the_backoff",
        "tests/integration/test_api_validation.py::test_a_run_can_be_cancelled_but_not_uncancelled",
    ),
    "WorkflowRun.spec.input": (
        "tests/unit/engine/test_executing.py::test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next",
        "tests/unit/engine/test_executing.py::test_an_input_expression_combines_the_run_input_with_an_earlier_steps_output",
        "tests/integration/test_runs_admitted.py::test_a_run_the_api_admits_but_the_operator_cannot_execute_fails_with_its_reason_and_event",
        "tests/unit/api/test_models.py::test_run_input_must_be_a_json_object_within_the_size_cap",
        "tests/integration/test_api_validation.py::test_a_runs_request_cannot_be_changed_after_creation",
    ),
    "WorkflowRun.spec.rerunOf": (
        "tests/unit/controllers/workflowruns/test_rerunning.py::test_a_source_the_rerun_cannot_start_from_is_refused_naming_the_cause",
        "tests/unit/controllers/workflowruns/test_rerunning.py::test_a_rerun_calls_only_the_failed_step_under_the_root_key_after_its_attempts",
        "tests/integration/test_rerun.py::test_a_rerun_reuses_the_succeeded_steps_and_calls_the_failed_one_under_the_root_key",
        "tests/integration/test_rerun.py::test_rerun_of_never_changes_and_a_run_cannot_rerun_itself",
    ),
    "WorkflowRun.spec.suspend": (
        "tests/unit/engine/test_waiting.py::test_a_suspended_run_lets_its_call_end_starts_nothing_and_goes_on_when_resumed",
        "tests/unit/engine/test_waiting.py::test_suspending_stops_a_steps_retries_and_it_goes_on_from_its_attempts",
    ),
    "WorkflowRun.spec.workflowRef": (
        "tests/integration/test_runs.py::test_a_three_step_run_passes_each_step_the_data_the_workflow_says",
        "tests/integration/test_api_validation.py::test_a_runs_request_cannot_be_changed_after_creation",
    ),
    "WorkflowSchedule.spec.concurrencyPolicy": (
        "tests/unit/controllers/workflowschedules/test_decisions.py::test_with_a_run_still_active_the_concurrency_policy_decides",
        "tests/integration/test_schedules.py::test_forbid_skips_a_time_while_its_run_is_still_active",
        "tests/integration/test_schedules.py::test_replace_cancels_the_active_run_and_starts_the_next",
    ),
    "WorkflowSchedule.spec.failedRunsHistoryLimit": (
        "tests/unit/controllers/workflowschedules/test_reconciler.py::test_finished_runs_beyond_the_history_limits_are_deleted_oldest_first",
    ),
    "WorkflowSchedule.spec.input": (
        "tests/integration/test_schedules.py::test_an_every_minute_schedule_starts_a_run_named_by_its_minute",
    ),
    "WorkflowSchedule.spec.schedule": (
        "tests/unit/controllers/workflowschedules/test_timing.py::test_a_day_of_month_and_a_weekday_both_restricted_mean_either",
        "tests/unit/controllers/workflowschedules/test_timing.py::test_each_of_cronjobs_macros_means_its_five_fields",
        "tests/integration/test_schedules.py::test_an_every_minute_schedule_starts_a_run_named_by_its_minute",
        "tests/integration/test_schedules.py::test_a_schedule_the_operator_cannot_run_says_why_and_starts_nothing",
    ),
    "WorkflowSchedule.spec.startingDeadlineSeconds": (
        "tests/unit/controllers/workflowschedules/test_decisions.py::test_a_time_missed_by_more_than_the_starting_deadline_is_skipped_as_missed",
        "tests/integration/test_schedules.py::test_an_operator_stopped_across_fire_times_starts_one_run_for_the_latest_or_none_too_late",
    ),
    "WorkflowSchedule.spec.successfulRunsHistoryLimit": (
        "tests/unit/controllers/workflowschedules/test_reconciler.py::test_finished_runs_beyond_the_history_limits_are_deleted_oldest_first",
        "tests/integration/test_schedules.py::test_history_limits_delete_the_older_finished_runs",
    ),
    "WorkflowSchedule.spec.suspend": (
        "tests/unit/controllers/workflowschedules/test_decisions.py::test_a_suspended_schedule_starts_nothing_and_sets_no_timer",
        "tests/unit/controllers/workflowschedules/test_decisions.py::test_a_schedule_resumed_after_a_suspension_runs_the_latest_time_missed_meanwhile",
        "tests/unit/controllers/workflowschedules/test_reconciler.py::test_a_suspended_schedule_has_no_next_time_and_no_gauge",
    ),
    "WorkflowSchedule.spec.timeZone": (
        "tests/unit/controllers/workflowschedules/test_timing.py::test_a_schedule_is_read_in_its_time_zone",
        "tests/unit/controllers/workflowschedules/test_timing.py::test_a_fixed_time_schedule_runs_once_in_the_repeated_hour",
        "tests/integration/test_schedules.py::test_a_schedule_the_operator_cannot_run_says_why_and_starts_nothing",
    ),
    "WorkflowSchedule.spec.workflowRef": (
        "tests/integration/test_schedules.py::test_an_every_minute_schedule_starts_a_run_named_by_its_minute",
        "tests/unit/controllers/workflowschedules/test_reconciler.py::test_a_missing_workflow_skips_the_time_and_turns_ready_false",
    ),
}


# --- The table against the CRDs and the test files -------------------------------------------


@functools.cache
def documented_fields() -> dict[str, str]:
    """Path → description of every field under `spec` of the committed CRDs."""
    fields: dict[str, str] = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((REPO / "crds" / name).read_text(encoding="utf-8"))
        kind = crd["spec"]["names"]["kind"]
        (version,) = crd["spec"]["versions"]
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        fields.update(walk(spec, f"{kind}.spec"))
    return fields


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(path, description) of each field beneath `schema`, items of lists as `[]`."""
    for name, field in schema.get("properties", {}).items():
        yield f"{path}.{name}", field.get("description", "")
        yield from walk(field, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")


def is_covered(path: str) -> bool:
    beneath_a_mirror = any(path.startswith((f"{m}.", f"{m}[]")) for m in MIRRORS)
    return path in PROOFS or path in KNOWN_UNTESTED or beneath_a_mirror


@functools.cache
def module_level_tests(file: str) -> frozenset[str]:
    """Names of the functions `file` defines at module level; empty if it does not exist."""
    path = REPO / file
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=file)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return frozenset(node.name for node in tree.body if isinstance(node, functions))


def is_defined(node_id: str) -> bool:
    file, _, name = node_id.partition("::")
    in_tests = file.startswith(("tests/unit/", "tests/integration/"))
    return in_tests and name.startswith("test_") and name in module_level_tests(file)


def test_every_documented_spec_field_is_mapped_to_a_test_of_its_promise() -> None:
    unmapped = [
        f"{path}: {description}"
        for path, description in documented_fields().items()
        if not is_covered(path)
    ]
    assert unmapped == [], "add a test proving each promise, and an entry in PROOFS"


def test_every_field_the_table_names_still_exists() -> None:
    named = set(PROOFS) | MIRRORS | KNOWN_UNTESTED
    assert sorted(named - set(documented_fields())) == []


def test_every_test_the_table_names_is_defined_in_its_file() -> None:
    node_ids = {node_id for proofs in PROOFS.values() for node_id in proofs}
    assert sorted(node_id for node_id in node_ids if not is_defined(node_id)) == []


def test_the_table_is_sorted_with_distinct_tests_and_an_entry_for_each_mirror() -> None:
    assert list(PROOFS) == sorted(PROOFS)
    assert [path for path, proofs in PROOFS.items() if not proofs] == []
    assert [path for path, proofs in PROOFS.items() if len(set(proofs)) < len(proofs)] == []
    assert sorted(MIRRORS - set(PROOFS)) == []
    assert sorted(KNOWN_UNTESTED & set(PROOFS)) == []


def test_fields_whose_promise_no_test_proves_are_reported() -> None:
    if KNOWN_UNTESTED:
        pytest.xfail(f"no test proves the promise of: {', '.join(sorted(KNOWN_UNTESTED))}")


# --- Promises no other test proved: the builders ---------------------------------------------


def test_every_probe_field_given_in_the_spec_reaches_the_container() -> None:
    # Values unlike the defaults and unlike each other, so that no field can stand in for another.
    ready = {"initialDelaySeconds": 2, "periodSeconds": 7,
             "timeoutSeconds": 4, "failureThreshold": 5}  # fmt: skip
    alive = {"initialDelaySeconds": 9, "periodSeconds": 30,
             "timeoutSeconds": 6, "failureThreshold": 8}  # fmt: skip
    probes = {"readiness": {"path": "/ready", "port": 9090, **ready},
              "liveness": {"path": "/alive", "port": 9091, **alive}}  # fmt: skip

    step = make_step(image="svc:1", probes=probes)
    (container,) = build_deployment(step)["spec"]["template"]["spec"]["containers"]

    assert container["readinessProbe"] == {"httpGet": {"path": "/ready", "port": 9090}, **ready}
    assert container["livenessProbe"] == {"httpGet": {"path": "/alive", "port": 9091}, **alive}


# --- Promises no other test proved: the engine, against a real step server -------------------

STEPS = ("validate", "score", "order")  # ServiceSteps, each served at /<name> of the step server
SERVICE_RETRY = {"limit": 2, "backoff": {"initialSeconds": 0.01, "factor": 2, "maxSeconds": 0.05}}


def service_step(name: str, **changes: Any) -> ServiceStep:
    """A Ready ServiceStep at /<name>, with a 5 s timeout and SERVICE_RETRY unless changed."""
    fields: dict[str, Any] = {"timeout_seconds": 5, "retry": SERVICE_RETRY, **changes}
    return build_service_step(name, path=f"/{name}", **fields)


def build_executor(
    server: StepServer,
    transport: AiohttpTransport,
    *steps: ServiceStep,
    clock: FakeClock | None = None,
) -> Executor:
    """An executor calling `steps` (default: STEPS) on `server`; on `clock` without jitter."""
    steps = steps or tuple(service_step(name) for name in STEPS)
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "jitter": lambda: 0.0}
    overrides = {step.metadata.name or "": server.base_url for step in steps}
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides, **timing)


async def test_a_workflow_steps_timeout_replaces_the_service_steps(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(json={}, delay=1.5))
    executor = build_executor(server, transport, service_step("validate", retry={"limit": 0}))
    steps = [{"name": "validate", "stepRef": "validate", "timeoutSeconds": 1}]

    outcome = await executor.execute(build_plan(build_workflow(steps)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.TIMED_OUT
    assert "no answer within 1s" in outcome.message  # not the ServiceStep's 5 s
    assert server.calls("/validate")[0].headers["Stepline-Deadline"] == "1.000"


async def test_a_workflow_steps_retry_limit_replaces_the_service_steps_and_0_calls_once(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(503))
    executor = build_executor(server, transport)
    overridden = [{"name": "validate", "stepRef": "validate", "retry": {"limit": 0}}]
    inherited = [{"name": "validate", "stepRef": "validate"}]

    once = await executor.execute(build_plan(build_workflow(overridden)), RunRequest("r1", {}))
    thrice = await executor.execute(build_plan(build_workflow(inherited)), RunRequest("r2", {}))

    assert [once.records()[0].attempts, thrice.records()[0].attempts] == [1, 3]
    assert len(server.calls("/validate")) == 4


async def test_a_workflow_steps_backoff_and_retry_on_replace_the_service_steps(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(429), Answer(429), Answer(503))
    clock = FakeClock()
    retry = {"limit": 5, "backoff": {"initialSeconds": 4, "factor": 1, "maxSeconds": 30},
             "retryOn": ["TooManyRequests"]}  # fmt: skip
    steps = [{"name": "validate", "stepRef": "validate", "retry": retry}]

    outcome = await build_executor(server, transport, clock=clock).execute(
        build_plan(build_workflow(steps)), RunRequest("r1", {})
    )

    assert clock.sleeps == [4.0, 4.0]  # the workflow's backoff, kept constant by factor 1
    assert outcome.records()[0].attempts == 3  # the ServiceStep's retryOn would retry the 503
    assert "ServerError is not in the step's retry.retryOn" in outcome.message


DAG = [
    {"name": "order", "stepRef": "order", "dependsOn": ["score"]},
    {"name": "score", "stepRef": "score", "dependsOn": []},
    {"name": "validate", "stepRef": "validate", "dependsOn": []},
]


async def test_depends_on_starts_a_step_once_the_steps_it_names_are_done_others_side_by_side(
    server: StepServer, transport: AiohttpTransport
) -> None:
    for name in STEPS:
        server.answer(f"/{name}", Answer(json={name: True}, delay=0.3))

    outcome = await build_executor(server, transport).execute(
        build_plan(build_workflow(DAG)), RunRequest("r1", {"x": 1})
    )

    assert server.most_in_flight == 2  # score and validate ([]) started with the run
    bodies = {request.path: request.body for request in server.received}
    # order waited for score and got its output; the others got the run input.
    assert bodies == {"/score": {"x": 1}, "/validate": {"x": 1}, "/order": {"score": True}}
    assert server.calls("/order")[0].at > server.calls("/score")[0].at
    assert outcome.output == {"validate": True}  # the last in plan order: score, order, validate


async def test_parallelism_one_runs_the_steps_one_at_a_time_in_plan_order(
    server: StepServer, transport: AiohttpTransport
) -> None:
    for name in STEPS:
        server.answer(f"/{name}", Answer(json={name: True}, delay=0.1))
    workflow = Workflow.from_body(
        {"metadata": {"name": "trade", "namespace": "shop", "generation": 1},
         "spec": {"steps": DAG, "parallelism": 1}}
    )  # fmt: skip

    await build_executor(server, transport).execute(build_plan(workflow), RunRequest("r1", {}))

    assert server.most_in_flight == 1
    assert [request.path for request in server.received] == ["/score", "/order", "/validate"]


async def test_a_step_whose_name_has_a_dash_is_read_as_steps_of_its_quoted_name(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(json={"inStock": True}))
    reading = '{"ok": steps["check-stock"].output.inStock}'
    steps = [
        {"name": "check-stock", "stepRef": "validate"},
        {"name": "order", "stepRef": "order", "input": reading},
    ]

    await build_executor(server, transport).execute(
        build_plan(build_workflow(steps)), RunRequest("r1", {})
    )

    assert server.calls("/order")[0].body == {"ok": True}


async def test_without_an_output_expression_a_run_outputs_the_last_output_produced(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(json={"approved": True}))
    steps = [
        {"name": "validate", "stepRef": "validate"},
        {"name": "notify", "stepRef": "order", "when": "input.notify"},
    ]

    outcome = await build_executor(server, transport).execute(
        build_plan(build_workflow(steps)), RunRequest("r1", {"notify": False})
    )

    assert outcome.records()[1].phase is StepPhase.SKIPPED
    assert outcome.output == {"approved": True}


# --- Promises no other test proved: running a WorkflowRun in the operator ----------------------


class RecordingRuntime:
    """What `drive_run` uses of the operator's `Runtime`: status writes and Events are recorded
    (`patches`: run name and status patch), runs are executed for real."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.runs = RunMemory()
        self.workflows = WorkflowMemory()
        self.metrics = Metrics()
        self.kube = self.events = self
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def leads(self) -> bool:
        return True

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.patches.append((name, patch))
        return {}

    def info(self, ref: dict[str, Any], *, reason: str, message: str) -> None:
        """Events are not what these tests look at."""

    warn = info


def make_workflow(steps: list[dict[str, Any]], **spec: Any) -> Workflow:
    metadata = {"name": "trade", "namespace": "shop", "uid": "uid-trade", "generation": 1}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps, **spec}})


def make_run(name: str, **status: Any) -> WorkflowRun:
    metadata = {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": 1}
    spec = {"workflowRef": "trade", "input": {"n": 1}}
    return WorkflowRun.from_body({"metadata": metadata, "spec": spec, "status": status})


async def drive(runtime: RecordingRuntime, run: WorkflowRun, workflow: Workflow) -> None:
    await drive_run(
        cast(Runtime, runtime), run, cancel=asyncio.Event(),
        find_workflow=lambda namespace, name: workflow, progress=RunProgress(),
    )  # fmt: skip


async def called(server: StepServer, path: str) -> None:
    while not server.calls(path):
        await asyncio.sleep(0.01)


def phases(patch: dict[str, Any]) -> list[tuple[str, str]]:
    return [(record["name"], record["phase"]) for record in patch["steps"]]


async def test_without_a_checkpoint_interval_each_step_is_written_before_the_next_starts(
    server: StepServer, transport: AiohttpTransport
) -> None:
    runtime = RecordingRuntime(build_executor(server, transport))
    written_before_score: list[list[tuple[str, str]]] = []

    def score(body: Any) -> Any:
        written_before_score.extend(phases(patch) for _, patch in runtime.patches)
        return body

    server.answer("/score", score)
    steps = [{"name": "validate", "stepRef": "validate"}, {"name": "score", "stepRef": "score"}]

    await drive(runtime, make_run("r1"), make_workflow(steps))

    assert written_before_score == [[("validate", "Succeeded"), ("score", "Running")]]


async def test_a_checkpoint_interval_writes_the_steps_finished_within_it_together_in_time(
    server: StepServer, transport: AiohttpTransport
) -> None:
    runtime = RecordingRuntime(build_executor(server, transport))
    written_before_score: list[int] = []

    def score(body: Any) -> Any:
        written_before_score.append(len(runtime.patches))
        return body

    server.answer("/score", score)
    server.answer("/order", Answer(json={}, delay=1.5))
    steps = [{"name": name, "stepRef": name} for name in STEPS]
    running = asyncio.create_task(
        drive(runtime, make_run("r1"), make_workflow(steps, checkpointIntervalSeconds=0.3))
    )

    await called(server, "/order")
    await asyncio.sleep(0.8)  # past the interval, while order is still being called
    held = list(runtime.patches)
    await running

    assert written_before_score == [0]  # validate's checkpoint was held
    ((_, checkpoint),) = held  # then written once, with score's
    assert phases(checkpoint) == [
        ("validate", "Succeeded"), ("score", "Succeeded"), ("order", "Running"),
    ]  # fmt: skip
    assert len(runtime.patches) == 2


async def test_a_resumed_run_has_only_what_is_left_of_its_workflows_time_limit(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/validate", Answer(json={}, delay=3))
    runtime = RecordingRuntime(build_executor(server, transport))
    started_at = (datetime.now(UTC) - timedelta(seconds=59.5)).isoformat()
    run = make_run("resumed", phase="Running", startedAt=started_at)
    workflow = make_workflow([{"name": "validate", "stepRef": "validate"}], timeoutSeconds=60)

    began = time.monotonic()
    await drive(runtime, run, workflow)

    assert time.monotonic() - began < 2  # half a second was left, not 60 s again
    (_, final) = runtime.patches[-1]
    assert [c["reason"] for c in final["conditions"] if c["type"] == "Succeeded"] == ["TimedOut"]


async def start_two_runs_of_a_single_slot(
    server: StepServer, transport: AiohttpTransport
) -> tuple[RecordingRuntime, list[asyncio.Task[None]]]:
    """Two runs of a workflow with `concurrency: 1`, the second started during the first's
    step; returns once the second has had time to start if it could."""
    server.answer("/validate", Answer(json={}, delay=0.6), Answer(json={}))
    runtime = RecordingRuntime(build_executor(server, transport))
    workflow = make_workflow([{"name": "validate", "stepRef": "validate"}], concurrency=1)
    runs = [asyncio.create_task(drive(runtime, make_run("first"), workflow))]
    await called(server, "/validate")
    runs.append(asyncio.create_task(drive(runtime, make_run("second"), workflow)))
    await asyncio.sleep(0.2)
    return runtime, runs


async def test_runs_over_the_workflows_concurrency_wait_for_a_slot(
    server: StepServer, transport: AiohttpTransport
) -> None:
    runtime, runs = await start_two_runs_of_a_single_slot(server, transport)
    calls_while_the_first_runs = len(server.received)
    await asyncio.gather(*runs)

    assert calls_while_the_first_runs == 1
    keys = [request.headers["Idempotency-Key"] for request in server.received]
    assert keys == ["uid-first/validate", "uid-second/validate"]
    finals = {name: patch["phase"] for name, patch in runtime.patches if "finishedAt" in patch}
    assert finals == {"first": "Succeeded", "second": "Succeeded"}


# --- Promises the code broke until this test found it -------------------------------------------


async def test_a_run_waiting_for_a_slot_shows_the_pending_phase(
    server: StepServer, transport: AiohttpTransport
) -> None:
    runtime, runs = await start_two_runs_of_a_single_slot(server, transport)
    waiting = [patch.get("phase") for name, patch in runtime.patches if name == "second"]
    await asyncio.gather(*runs)

    assert waiting == ["Pending"]


class PollingDirectory:
    """A directory that cannot wait, so that the engine waits for readiness on its clock."""

    def __init__(self, index: StepIndex) -> None:
        self.index = index

    def find_step(self, namespace: str, name: str) -> ServiceStep | None:
        return self.index.find_step(namespace, name)

    def is_step_ready(self, step: ServiceStep) -> bool:
        return self.index.is_step_ready(step)


async def test_a_run_out_of_time_while_waiting_for_a_ready_step_fails_timed_out(
    transport: AiohttpTransport,
) -> None:
    clock = FakeClock()
    directory = PollingDirectory(StepIndex([service_step("validate", ready=False)]))
    executor = Executor(transport=transport, directory=directory, clock=clock)
    plan = build_plan(build_workflow([{"name": "validate", "stepRef": "validate"}]))

    outcome = await executor.execute(plan, RunRequest("r1", {}, deadline_seconds=2))

    assert sum(clock.sleeps) == pytest.approx(2)  # the run's 2 s ended the wait, not the step's 5 s
    assert outcome.status is RunStatus.TIMED_OUT
