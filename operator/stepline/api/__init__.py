"""Stepline's API, group stepline.io, version v1alpha1: the models of ServiceStep, Workflow and
WorkflowRun, and the CRDs generated from them.

The models are the single source of truth for the CRD schemas (`stepline crds`). This package
imports nothing else of Stepline's; everything above it (resources, engine, controllers) imports
from here, and from this module rather than from its submodules.
"""

from stepline.api.base import (
    API_VERSION,
    GROUP,
    VERSION,
    InvalidObjectError,
    KubeObject,
    ObjectMeta,
)
from stepline.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)
from stepline.api.crds import KINDS, build_crd, find_crd_drift, render_crds, write_crds
from stepline.api.dependencies import (
    compute_dependencies,
    describe_cycles,
    find_dependency_cycles,
)
from stepline.api.payloads import (
    MAX_INPUT_BYTES,
    MAX_JSON_DEPTH,
    MAX_RECORDED_OUTPUT_BYTES,
    PayloadInfo,
    encode_payload,
    find_input_problem,
    measure_depth,
    record_payload,
)
from stepline.api.policies import (
    Backoff,
    RetryOn,
    RetryPolicy,
    Scaling,
    ScalingBehavior,
    ScalingPolicy,
    ScalingRules,
)
from stepline.api.servicesteps import (
    DEFAULT_PATH,
    DEFAULT_PORT,
    EnvVar,
    ServiceStep,
    ServiceStepSpec,
    ServiceStepStatus,
)
from stepline.api.workflowruns import (
    RunPhase,
    StepError,
    StepPhase,
    StepRecord,
    WorkflowRun,
    WorkflowRunSpec,
    WorkflowRunStatus,
)
from stepline.api.workflows import (
    ExpressionProblem,
    LatencyQuantiles,
    PredictedDuration,
    Retention,
    RunStatistics,
    Workflow,
    WorkflowSpec,
    WorkflowStatus,
    WorkflowStep,
    WorkflowStepStatus,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_PATH",
    "DEFAULT_PORT",
    "GROUP",
    "KINDS",
    "MAX_INPUT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_RECORDED_OUTPUT_BYTES",
    "VERSION",
    "Backoff",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "EnvVar",
    "ExpressionProblem",
    "InvalidObjectError",
    "KubeObject",
    "LatencyQuantiles",
    "ObjectMeta",
    "PayloadInfo",
    "PredictedDuration",
    "Reason",
    "Retention",
    "RetryOn",
    "RetryPolicy",
    "RunPhase",
    "RunStatistics",
    "Scaling",
    "ScalingBehavior",
    "ScalingPolicy",
    "ScalingRules",
    "ServiceStep",
    "ServiceStepSpec",
    "ServiceStepStatus",
    "StepError",
    "StepPhase",
    "StepRecord",
    "Workflow",
    "WorkflowRun",
    "WorkflowRunSpec",
    "WorkflowRunStatus",
    "WorkflowSpec",
    "WorkflowStatus",
    "WorkflowStep",
    "WorkflowStepStatus",
    "build_crd",
    "compute_dependencies",
    "describe_cycles",
    "encode_payload",
    "find_condition",
    "find_crd_drift",
    "find_dependency_cycles",
    "find_input_problem",
    "measure_depth",
    "record_payload",
    "render_crds",
    "set_condition",
    "write_crds",
]
