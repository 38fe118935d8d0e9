"""configure_kopf() and the event loop: kopf's settings from Stepline's and the loop it runs in,
checked without starting an operator."""

from __future__ import annotations

import logging

import kopf
import uvloop

from stepline.controllers.lifecycle import configure_kopf, new_event_loop
from stepline.settings import Settings


def configured(**settings: object) -> kopf.OperatorSettings:
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(Settings(**settings), kopf_settings)  # type: ignore[arg-type]
    return kopf_settings


def test_normal_events_such_as_applied_are_posted_not_only_warnings() -> None:
    posting = configured().posting
    assert posting.enabled
    assert posting.level <= logging.INFO
    # Log lines stay logs: only explicit kopf.info/kopf.warn calls become Events.
    assert not posting.loggers


def test_kopfs_bookkeeping_lives_under_the_stepline_prefix() -> None:
    persistence = configured().persistence
    assert persistence.finalizer == "stepline.io/finalizer"
    progress = persistence.progress_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "stepline.io"
    diffbase = persistence.diffbase_storage
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert diffbase.prefix == "stepline.io"


def test_one_replica_runs_standalone_unless_a_peering_is_named() -> None:
    assert configured().peering.standalone
    peered = configured(peering="stepline-ha").peering
    assert not peered.standalone
    assert peered.name == "stepline-ha"
    assert peered.mandatory


def test_watches_and_workers_follow_the_settings() -> None:
    kopf_settings = configured(
        watch_server_timeout_seconds=120, watch_client_timeout_seconds=150, worker_limit=8
    )
    assert kopf_settings.watching.server_timeout == 120
    assert kopf_settings.watching.client_timeout == 150
    assert kopf_settings.queueing.worker_limit == 8


def test_an_idle_object_worker_gives_its_slot_back_within_a_second() -> None:
    # With worker_limit slots per kind, a worker idling for kopf's default 5 s keeps the objects
    # beyond the limit waiting that long: a burst of new steps would be deployed in 5 s waves.
    assert configured().queueing.idle_timeout <= 1.0


def test_the_operator_runs_in_uvloops_event_loop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
