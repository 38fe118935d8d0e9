"""Reading watch events (kube.parse_watch_event): the lines the API server sends. A `410 Gone`
cannot be had on demand from a fresh API server (it serves old versions until etcd compacts
them), so its line is the one a long-running kube-apiserver v1.37 sent, byte for byte."""

from __future__ import annotations

import pytest

from stepline.errors import KubeApiError
from stepline.kube import parse_watch_event

PATH = "/apis/apps/v1/namespaces/shop/deployments"
GONE = (
    b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
    b'"status":"Failure","message":"too old resource version: 1 (2074)",'
    b'"reason":"Expired","code":410}}'
)


def test_an_event_is_its_type_and_object() -> None:
    line = b'{"type":"MODIFIED","object":{"metadata":{"name":"fraud","resourceVersion":"7"}}}'
    event = parse_watch_event(PATH, line)
    assert event["type"] == "MODIFIED"
    assert event["object"]["metadata"]["resourceVersion"] == "7"


def test_an_expired_version_is_a_410_with_the_servers_message() -> None:
    with pytest.raises(KubeApiError) as raised:
        parse_watch_event(PATH, GONE)
    assert raised.value.status == 410
    assert "too old resource version" in str(raised.value)


@pytest.mark.parametrize("line", [b"<html>proxy error</html>", b'["not", "an", "event"]'])
def test_a_line_that_is_no_event_breaks_the_watch_off(line: bytes) -> None:
    with pytest.raises(KubeApiError) as raised:
        parse_watch_event(PATH, line)
    assert raised.value.status == 0
    assert PATH in str(raised.value)
