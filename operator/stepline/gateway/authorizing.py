"""Who may invoke a workflow: the caller's bearer token reviewed by the API server (a
TokenReview) and its user's permission to `invoke` the Workflow (a SubjectAccessReview), the
verdict kept briefly. The web view (`stepline.ui`) asks the same of its pages and buttons, with
other verbs and resources (`authorize(..., verb=, resource=)`: `list workflowruns`, …), and who
a token's user is (`identify`).

    authorize(header, namespace, name) -> Verdict
        200  allowed: a valid token whose user may `invoke` workflows.stepline.io/<name>
        401  Unauthorized: no `Authorization: Bearer <token>` header, or a token the API server
             does not accept (garbage, expired, issued for another audience)
        403  Forbidden: a valid token whose user lacks `invoke` on the Workflow
        503  AuthorizationUnavailable: no review could be had (the API server unreachable or
             slow, or refusing the operator itself): never let through

Kept: verdicts by (SHA-256 of the token, verb, resource, namespace, name), an allowed one
`allowed_ttl` seconds, a 401 or 403 `denied_ttl` seconds, a 503 not at all; at most
`MAX_VERDICTS`, the least recently used dropped first; who a token is, as long as an allowed
verdict. So a revoked token or a removed binding still works for at most
`allowed_ttl`, and a new binding takes effect within `denied_ttl`. Requests that miss the same
key at once share one review.

The raw token is used only in the TokenReview's body: never kept (the cache holds its hash),
logged, or put in an answer. The API server is reached only through a `Reviewer` (the
operator's `KubeApi.review`); nothing else here does I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from stepline.errors import KubeApiError
from stepline.settings import Settings

logger = logging.getLogger(__name__)

GROUP, RESOURCE, VERB = "stepline.io", "workflows", "invoke"
# Enough for every (caller, workflow) pair of a busy cluster; ~300 bytes each. A flood of
# distinct tokens evicts the oldest verdicts, which then cost one review more.
MAX_VERDICTS = 10_000
# An invoke waits for its reviews: the API server answers one in milliseconds, so a review
# slower than this is an API server in trouble, and the caller gets a 503 to retry.
REVIEW_SECONDS = 5.0
# At most one warning per this many seconds while reviews fail: an outage under load would
# otherwise write a line per invoke.
WARN_EVERY_SECONDS = 30.0

Clock = Callable[[], float]
# (SHA-256 of the token, verb, resource, namespace, name); an identity: ("", "", "", "").
_Key = tuple[bytes, str, str, str, str]
_Kept = TypeVar("_Kept")


class Reviewer(Protocol):
    """Creates a review object and returns its `status` (`KubeApi.review`)."""

    async def review(
        self, api_version: str, kind: str, spec: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to answer a caller: 200 (go on), else the refusal's status, reason and message.
    `user`: the token's username, once the API server has accepted it."""

    status: int
    reason: str = ""
    message: str = ""
    user: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Verdict(200)
NO_TOKEN = Verdict(
    401,
    "Unauthorized",
    "invoke needs a bearer token: send `Authorization: Bearer <token>` "
    "(for a ServiceAccount: `kubectl create token <name>`)",
)
NOT_BEARER = Verdict(401, "Unauthorized", "the Authorization header is not `Bearer <token>`")
REFUSED_TOKEN = Verdict(
    401,
    "Unauthorized",
    "the Kubernetes API server does not accept the bearer token "
    "(invalid, expired, or issued for another audience)",
)
UNAVAILABLE = Verdict(
    503,
    "AuthorizationUnavailable",
    "the operator could not check the caller with the Kubernetes API server; try again",
)


def parse_bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case), else
    None."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class VerdictCache(Generic[_Kept]):
    """Verdicts (or identities) until they expire, at most `max_entries`, the least recently
    used dropped first."""

    def __init__(self, *, max_entries: int, clock: Clock) -> None:
        self._entries: OrderedDict[_Key, tuple[float, _Kept]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _Key) -> _Kept | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, verdict = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: _Key, verdict: _Kept, *, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = (self._clock() + ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class Authorizer:
    """Decides, per request, whether its bearer token may invoke a Workflow (module docstring).
    `audiences`: those a token must be issued for (empty: the API server's own)."""

    def __init__(
        self,
        reviewer: Reviewer,
        *,
        audiences: tuple[str, ...] = (),
        allowed_ttl: float,
        denied_ttl: float,
        max_verdicts: int = MAX_VERDICTS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._reviewer = reviewer
        self._audiences = audiences
        self._allowed_ttl = allowed_ttl
        self._denied_ttl = denied_ttl
        self._cache: VerdictCache[Verdict] = VerdictCache(max_entries=max_verdicts, clock=clock)
        # Who each token is (a TokenReview's user, or None: refused), kept as verdicts are.
        self._identities: VerdictCache[dict[str, Any] | None] = VerdictCache(
            max_entries=max_verdicts, clock=clock
        )
        self._pending: dict[_Key, asyncio.Future[Verdict]] = {}
        self._clock = clock
        self._quiet_until = float("-inf")
        self._unwarned = 0

    async def authorize(
        self,
        header: str | None,
        namespace: str,
        name: str,
        *,
        verb: str = VERB,
        resource: str = RESOURCE,
    ) -> Verdict:
        """The verdict on the `Authorization` header's token for `verb` on `resource` (of
        stepline.io) `name` in `namespace`: by default, invoking the Workflow. An empty `name`
        asks of the whole collection (`list`, `create`)."""
        if header is None:
            return NO_TOKEN
        token = parse_bearer(header)
        if token is None:
            return NOT_BEARER
        key = (hashlib.sha256(token.encode()).digest(), verb, resource, namespace, name)
        verdict = self._cache.get(key)
        if verdict is not None:
            return verdict
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._review(token, key))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: a caller that goes away does not cancel the review the others wait for.
        return await asyncio.shield(pending)

    async def identify(self, header: str | None) -> Verdict:
        """Whether the API server accepts the header's token: 200 with the token's `user`, else
        the refusal (401) or 503."""
        token = parse_bearer(header)
        if token is None:
            return NO_TOKEN if header is None else NOT_BEARER
        try:
            user = await self._identity(token)
        except KubeApiError as exc:
            self._warn_unavailable(exc)
            return UNAVAILABLE
        return REFUSED_TOKEN if user is None else Verdict(200, user=str(user.get("username", "")))

    async def _identity(self, token: str) -> dict[str, Any] | None:
        key = (hashlib.sha256(token.encode()).digest(), "", "", "", "")
        known = self._identities.get(key)
        if known is not None:
            return known
        user = await self._authenticate(token)
        ttl = self._allowed_ttl if user is not None else self._denied_ttl
        if user is not None:
            self._identities.put(key, user, ttl=ttl)
        return user

    async def _review(self, token: str, key: _Key) -> Verdict:
        _, _, _, namespace, name = key
        try:
            user = await self._identity(token)
            verdict = REFUSED_TOKEN if user is None else await self._authorize(user, key)
        except KubeApiError as exc:
            self._warn_unavailable(exc)
            return UNAVAILABLE
        ttl = self._allowed_ttl if verdict.allowed else self._denied_ttl
        self._cache.put(key, verdict, ttl=ttl)
        if not verdict.allowed:
            logger.debug(
                "invoke of %s/%s refused (%d, token %s)",
                namespace, name, verdict.status, key[0][:4].hex(),
            )  # fmt: skip
        return verdict

    async def _authenticate(self, token: str) -> dict[str, Any] | None:
        """The token's user (username, uid, groups, extra), or None if it is not accepted."""
        spec: dict[str, Any] = {"token": token}
        if self._audiences:
            spec["audiences"] = list(self._audiences)
        status = await self._reviewer.review(
            "authentication.k8s.io/v1", "TokenReview", spec, timeout=REVIEW_SECONDS
        )
        user = status.get("user")
        if status.get("authenticated") is not True or not isinstance(user, dict):
            return None
        # With audiences asked for, the API server names those the token is good for: one of
        # ours must be among them (TokenReviewStatus.audiences).
        if self._audiences and not set(status.get("audiences") or ()) & set(self._audiences):
            return None
        return user

    async def _authorize(self, user: Mapping[str, Any], key: _Key) -> Verdict:
        _, verb, resource, namespace, name = key
        spec = build_access_review_spec(
            user, namespace=namespace, name=name, verb=verb, resource=resource
        )
        status = await self._reviewer.review(
            "authorization.k8s.io/v1", "SubjectAccessReview", spec, timeout=REVIEW_SECONDS
        )
        username = str(user.get("username", ""))
        if status.get("allowed") is True:
            return Verdict(200, user=username)
        what = f"{resource}.{GROUP} {name!r}" if name else f"{resource}.{GROUP}"
        role = " (the chart's ClusterRole <release>-invoker)" if verb == VERB else ""
        message = (
            f"user {username!r} may not {verb} {what} in namespace {namespace!r}: bind it to a "
            f"role that grants it{role}"
        )
        return Verdict(403, "Forbidden", message, user=username)

    def _warn_unavailable(self, exc: KubeApiError) -> None:
        now = self._clock()
        if now < self._quiet_until:
            self._unwarned += 1
            return
        since = f" ({self._unwarned} more since the last warning)" if self._unwarned else ""
        logger.warning("invoke refused 503: a token or access review failed: %s%s", exc, since)
        self._quiet_until, self._unwarned = now + WARN_EVERY_SECONDS, 0


def build_authorizer(settings: Settings, reviewer: Reviewer) -> Authorizer | None:
    """The invoke port's authorizer as configured; None (and a warning) when it is turned off."""
    if not settings.invoke_auth:
        logger.warning(
            "invoke authentication is off (STEPLINE_INVOKE_AUTH=false): whoever reaches port %d "
            "may invoke every workflow this operator watches",
            settings.http_port,
        )
        return None
    return Authorizer(
        reviewer,
        audiences=settings.invoke_auth_audiences,
        allowed_ttl=settings.invoke_auth_allowed_ttl_seconds,
        denied_ttl=settings.invoke_auth_denied_ttl_seconds,
    )


def build_access_review_spec(
    user: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    verb: str = VERB,
    resource: str = RESOURCE,
) -> dict[str, Any]:
    """A SubjectAccessReview's spec: may `user` (a TokenReview's) `verb` the `resource` (by
    default: invoke the Workflow)? No `name`: the collection."""
    attributes = {"namespace": namespace, "verb": verb, "group": GROUP, "resource": resource}
    if name:
        attributes["name"] = name
    spec: dict[str, Any] = {
        "user": user.get("username", ""),
        "groups": list(user.get("groups") or ()),
        "resourceAttributes": attributes,
    }
    if user.get("uid"):
        spec["uid"] = user["uid"]
    if user.get("extra"):
        spec["extra"] = user["extra"]
    return spec
