"""Stepline's controllers: one package per kind, and the pieces they share.

- `servicesteps/`: kopf's handlers, the reconciler that applies each step's Deployment, Service
  and HPA, the step's status, the watches of what it owns and of its endpoints, the external
  steps' health checks, and the figures its autoscaler follows.
- `workflows/`: kopf's event handler and the Workflow's status (its steps' readiness).
- `workflowruns/`: the run watch, the supervisor with one task per unfinished run, the runner
  that drives a run through the engine and writes its status, and the run history (retention,
  statistics, duration prediction).
- `approvals/`: a watch of Approvals into an index by run and step, the check of their admission
  policies, and the leader's judge that writes each Approval's Accepted condition.

Shared: `wiring` starts and stops it all (`run()`); `runtime` is what the controllers share and
what each remembers; `informers` lists and watches a kind; `events` posts Kubernetes Events;
`election` and `leadership` say which replica writes and hand the writers over; `backoff` is the
one retry pacing; `essences` is kopf's diff base.

Handlers are thin: they parse a body into a model, call one function of their kind's
reconciler or of the engine, and map errors to kopf's TemporaryError / PermanentError.
"""

from stepline.controllers.wiring import run

__all__ = ["run"]
