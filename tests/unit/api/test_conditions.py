"""set_condition(): lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stepline.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123)


def _ready(
    conditions: list[Condition], status: ConditionStatus, reason: Reason, now: datetime
) -> list[Condition]:
    return set_condition(
        conditions,
        condition_type=ConditionType.READY,
        status=status,
        reason=reason,
        message=f"{reason} message",
        observed_generation=3,
        now=now,
    )


def test_a_new_condition_is_appended_with_the_time_given() -> None:
    conditions = _ready([], ConditionStatus.FALSE, Reason.STEPS_NOT_READY, T0)
    assert len(conditions) == 1
    assert conditions[0].last_transition_time == T0
    assert conditions[0].observed_generation == 3


def test_the_transition_time_stays_when_only_reason_and_message_change() -> None:
    first = _ready([], ConditionStatus.FALSE, Reason.STEPS_NOT_READY, T0)
    second = _ready(first, ConditionStatus.FALSE, Reason.STEP_NOT_FOUND, T1)
    assert second[0].last_transition_time == T0
    assert second[0].reason == "StepNotFound"
    assert second[0].message == "StepNotFound message"


def test_the_transition_time_moves_when_the_status_flips_and_is_kept_to_seconds() -> None:
    first = _ready([], ConditionStatus.FALSE, Reason.STEPS_NOT_READY, T0)
    second = _ready(first, ConditionStatus.TRUE, Reason.ALL_STEPS_READY, T1)
    assert second[0].last_transition_time == T1.replace(microsecond=0)


def test_other_conditions_keep_their_place_and_the_input_is_not_changed() -> None:
    progressing = set_condition(
        [],
        condition_type=ConditionType.PROGRESSING,
        status=ConditionStatus.TRUE,
        reason=Reason.ROLLOUT_IN_PROGRESS,
        message="rolling out",
        now=T0,
    )
    both = _ready(progressing, ConditionStatus.TRUE, Reason.AVAILABLE, T0)
    again = _ready(both, ConditionStatus.FALSE, Reason.REPLICAS_UNAVAILABLE, T1)
    assert [c.type for c in again] == ["Progressing", "Ready"]
    assert both[1].status == ConditionStatus.TRUE
    assert find_condition(again, "Ready") is again[1]
    assert find_condition(again, "Degraded") is None


def test_a_condition_is_written_in_the_metav1_shape() -> None:
    (condition,) = _ready([], ConditionStatus.TRUE, Reason.AVAILABLE, T0)
    assert condition.to_wire() == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "reason": "Available",
        "message": "Available message",
    }


def test_a_message_longer_than_metav1_allows_is_cut_not_refused() -> None:
    (condition,) = set_condition(
        [],
        condition_type=ConditionType.READY,
        status=ConditionStatus.FALSE,
        reason=Reason.RECONCILE_FAILED,
        message="x" * 40000,
        now=T0,
    )
    assert len(condition.message) == 32768
