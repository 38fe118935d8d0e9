"""Which replica of a step gets a call: the least loaded of two ready ones picked at random.

A step's Service balances per connection (kube-proxy), and the operator keeps its connections
alive, so replicas an autoscaler adds would get no calls while the old connections last (seen on
real pods: bench/elastic/RESULTS.md). So calls to a deployed step go to its ready endpoints,
learnt from its Service's EndpointSlices (`controllers/endpoints.py` follows them), one
connection pool per replica. Each attempt picks anew: two endpoints at random, the one with
fewer calls in flight (ties: the first drawn) — "power of two choices", which keeps the load
even without a global ordering and without herding every call onto one new, idle replica.

A step with no ready endpoint known (slices not seen yet, balancing off, a step outside the
cluster) is called at its Service's address, as before. Pure: no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stepline.resources.labels import PORT_NAME  # the step Service's port, named in its slices


@dataclass(frozen=True, slots=True)
class Address:
    """One replica's address: `base` is what a path is appended to (`http://10.0.0.5:8080`)."""

    ip: str
    port: int

    @property
    def base(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a deployed step's replicas are: its namespace and name (its Service's), and the
    path (with query) a call goes to on any of them."""

    namespace: str
    service: str
    path: str


def slice_addresses(body: Mapping[str, Any], *, port_name: str = PORT_NAME) -> tuple[Address, ...]:
    """The ready, not terminating addresses of one EndpointSlice, on its port named
    `port_name`; none when it has no such port or is of type FQDN. A missing `ready` counts as
    ready (the API's rule: unknown state means ready)."""
    if body.get("addressType") not in {"IPv4", "IPv6"}:
        return ()
    port = next(
        (p.get("port") for p in body.get("ports") or () if p.get("name", "") == port_name), None
    )
    if not isinstance(port, int):
        return ()
    found: list[Address] = []
    for endpoint in body.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready") is False or conditions.get("terminating") is True:
            continue
        found.extend(Address(ip, port) for ip in (endpoint.get("addresses") or ())[:1])
    return tuple(found)


class Balancer:
    """The ready endpoints of every deployed step, by (namespace, step), and the calls in flight
    to each; see the module docstring."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()  # noqa: S311 # a load spread, not a secret
        # (namespace, step) → slice name → its addresses.
        self._slices: dict[tuple[str, str], dict[str, tuple[Address, ...]]] = {}
        # (namespace, step) → the union of its slices' addresses, in a stable order.
        self._ready: dict[tuple[str, str], tuple[Address, ...]] = {}
        self._in_flight: dict[Address, int] = {}

    def update(
        self, namespace: str, step: str, slice_name: str, addresses: Iterable[Address]
    ) -> None:
        """Records what one of the step's slices lists now (an empty list: nothing ready)."""
        slices = self._slices.setdefault((namespace, step), {})
        slices[slice_name] = tuple(addresses)
        self._rebuild(namespace, step)

    def remove(self, namespace: str, step: str, slice_name: str) -> None:
        """Forgets a deleted slice."""
        slices = self._slices.get((namespace, step))
        if slices is not None and slices.pop(slice_name, None) is not None:
            if not slices:
                del self._slices[namespace, step]
            self._rebuild(namespace, step)

    def ready(self, namespace: str, step: str) -> tuple[Address, ...]:
        return self._ready.get((namespace, step), ())

    def in_flight(self, address: Address) -> int:
        return self._in_flight.get(address, 0)

    def pick(self, namespace: str, step: str) -> Address | None:
        """The endpoint for the next attempt, or None: call the Service."""
        ready = self._ready.get((namespace, step), ())
        if len(ready) <= 1:
            return ready[0] if ready else None
        first, second = self._rng.sample(ready, 2)
        return second if self.in_flight(second) < self.in_flight(first) else first

    @contextmanager
    def lease(self, address: Address | None) -> Iterator[None]:
        """Counts a call in flight to `address` (None: nothing to count) while it lasts."""
        if address is None:
            yield
            return
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        try:
            yield
        finally:
            left = self._in_flight[address] - 1
            if left:
                self._in_flight[address] = left
            else:
                del self._in_flight[address]

    def _rebuild(self, namespace: str, step: str) -> None:
        key = (namespace, step)
        merged = dict.fromkeys(a for s in self._slices.get(key, {}).values() for a in s)
        if merged:
            self._ready[key] = tuple(merged)
        else:
            self._ready.pop(key, None)
