"""Rendering a registry for a /metrics response, in the format the scraper asks for.

Prometheus asks for OpenMetrics (`Accept: application/openmetrics-text; version=1.0.0, ...`) and
only that format carries exemplars; anything else gets the classic text format 0.0.4. No I/O here:
the HTTP handler (the gateway) calls `render_metrics` and writes the body and content type.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest


class Exposition(NamedTuple):
    body: bytes
    content_type: str


def render_metrics(registry: CollectorRegistry, *, accept: str | None) -> Exposition:
    """The registry's samples encoded for a scraper that sent `accept` (None: no header).

    A malformed Accept header falls back to the text format: a scrape never fails because of it.
    """
    try:
        encoder, content_type = choose_encoder(accept or "")
    except (ValueError, TypeError):  # the client library chokes on e.g. `version=abc`
        encoder, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    return Exposition(encoder(registry), content_type)
