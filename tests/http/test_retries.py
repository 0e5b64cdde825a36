"""Retries (security.md #18): idempotent methods on connection errors and 429/502/503/504,
backoff with jitter, Retry-After capped, POST only with an idempotency key."""

from __future__ import annotations

import itertools

import pytest
import requests

from integrations import services
from integrations.http import retry
from integrations.models import CallLog
from tests.http.servers import RawServer, closed_port, silent_first
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def waits(monkeypatch, settings):
    """Record the waits instead of sleeping them (no timed assertions)."""
    settings.INTEGRATIONS_RETRY_BACKOFF = 0.01
    recorded: list[float] = []
    monkeypatch.setattr(retry, "sleep", recorded.append)
    return recorded


def sequence(*replies: Reply):
    """A handler answering with ``replies`` in turn, then the last one forever."""
    it = itertools.chain(replies, itertools.repeat(replies[-1]))
    return lambda request: next(it)


def test_503_with_retry_after_then_200(server, make_integration, waits):
    """security.md #18: the 503 is retried after the Retry-After it asked for; one log row
    counts both attempts."""
    server.route(
        "GET", "/api/x", sequence(Reply(503, b"busy", {"Retry-After": "2"}), Reply(200, {"ok": 1}))
    )
    make_integration(base_url=f"{server.url}/api/")
    response = services.request("billing", "GET", "x")
    assert response.status_code == 200 and response.json() == {"ok": 1}
    assert waits == [2.0]
    row = CallLog.objects.get()
    assert row.attempts == 2 and row.ok and row.status_code == 200


def test_retry_after_is_capped(server, make_integration, waits, settings):
    """security.md #18: a Retry-After of an hour waits only RETRY_AFTER_CAP."""
    settings.INTEGRATIONS_RETRY_AFTER_CAP = 1.5
    server.route(
        "GET", "/api/x", sequence(Reply(429, b"", {"Retry-After": "3600"}), Reply(200, {}))
    )
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x").status_code == 200
    assert waits == [1.5]


def test_retry_after_as_http_date(server, make_integration, waits):
    """RFC 9110: Retry-After may be an HTTP date; a date in the past means no wait."""
    server.route(
        "GET",
        "/api/x",
        sequence(Reply(503, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), Reply(200, {})),
    )
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x").status_code == 200
    assert waits == [0.0]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_give_up_after_the_budget(
    server, make_integration, waits, settings, status
):
    """security.md #18: RETRY_TOTAL retries, growing backoff with jitter, then the last
    response is returned (not raised)."""
    settings.INTEGRATIONS_RETRY_TOTAL = 3
    server.route("GET", "/api/x", lambda r: Reply(status, b""))
    make_integration(base_url=f"{server.url}/api/")
    response = services.request("billing", "GET", "x")
    assert response.status_code == status
    assert len(server.requests) == 4
    steps = [0.01, 0.02, 0.04]
    assert all(step / 2 <= wait <= step for wait, step in zip(waits, steps, strict=True))
    row = CallLog.objects.get()
    assert row.attempts == 4 and not row.ok and row.error.startswith(f"HTTP {status}")


def test_500_is_not_retried(server, make_integration, waits):
    """security.md #18: only 429/502/503/504 are retried."""
    server.route("GET", "/api/x", lambda r: Reply(500, b""))
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x").status_code == 500
    assert len(server.requests) == 1 and waits == []


def test_post_is_not_retried(server, make_integration, waits):
    """security.md #18: a POST without an idempotency header is sent once, whatever comes back."""
    server.route("POST", "/api/orders", lambda r: Reply(503, b"", {"Retry-After": "1"}))
    make_integration(base_url=f"{server.url}/api/")
    response = services.request("billing", "POST", "orders", json={"n": 1})
    assert response.status_code == 503
    assert len(server.requests) == 1 and waits == []
    assert CallLog.objects.get().attempts == 1


def test_post_with_idempotency_header_is_retried_with_one_key(server, make_integration, waits):
    """security.md #18 (stripe-python): with idempotency_header set, POST is retried and every
    attempt carries the same generated key."""
    server.route("POST", "/api/orders", sequence(Reply(502, b""), Reply(503, b""), Reply(201, {})))
    make_integration(base_url=f"{server.url}/api/", idempotency_header="Idempotency-Key")
    assert services.request("billing", "POST", "orders", json={"n": 1}).status_code == 201
    keys = [r.headers.get("Idempotency-Key") for r in server.requests]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]
    assert all(r.body == b'{"n": 1}' for r in server.requests)
    services.request("billing", "POST", "orders", json={"n": 2})
    assert server.requests[-1].headers["Idempotency-Key"] != keys[0]


def test_callers_own_idempotency_key_is_kept(server, make_integration, waits):
    """A key the caller supplies (header name in any case) is reused as is."""
    server.route("POST", "/api/orders", sequence(Reply(503, b""), Reply(200, {})))
    make_integration(base_url=f"{server.url}/api/", idempotency_header="Idempotency-Key")
    services.request("billing", "POST", "orders", headers={"idempotency-key": "mine"})
    sent = [{k.lower(): v for k, v in r.headers.items()} for r in server.requests]
    assert [h["idempotency-key"] for h in sent] == ["mine", "mine"]


def test_connection_refused_is_retried_then_raised(make_integration, waits, settings):
    """security.md #18: connection errors on GET are retried with backoff, then raised as
    requests.ConnectionError; the row counts every attempt."""
    settings.INTEGRATIONS_RETRY_TOTAL = 2
    make_integration(base_url=f"http://127.0.0.1:{closed_port()}/api/")
    with pytest.raises(requests.ConnectionError):
        services.request("billing", "GET", "x")
    assert len(waits) == 2
    row = CallLog.objects.get()
    assert row.attempts == 3 and row.status_code is None and "ConnectionError" in row.error


OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_read_timeout_on_get_is_retried(make_integration, waits):
    """security.md #18: a GET whose first attempt times out reading is sent again (within the
    deadline); the row counts both attempts."""
    with RawServer(silent_first(2, OK_CLOSE)) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=0.3)
        response = services.request("billing", "GET", "x", deadline=1.5)
        assert response.content == b"ok" and srv.accepted == 2
    assert len(waits) == 1
    row = CallLog.objects.get()
    assert row.ok and row.attempts == 2


def test_read_timeout_on_post_is_not_retried(make_integration, waits):
    """security.md #18: a POST that timed out may have been done: without an idempotency key
    it is not sent again."""
    with RawServer(silent_first(2, OK_CLOSE)) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=0.3)
        with pytest.raises(requests.ReadTimeout):
            services.request("billing", "POST", "x", deadline=1.5)
        assert srv.accepted == 1
    assert waits == [] and CallLog.objects.get().attempts == 1


def test_retries_never_sleep_past_the_deadline(server, make_integration, waits):
    """security.md #16/18: a Retry-After longer than what is left of the deadline ends the
    retries and returns the response."""
    server.route("GET", "/api/x", lambda r: Reply(503, b"", {"Retry-After": "30"}))
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x", deadline=2).status_code == 503
    assert waits == [] and len(server.requests) == 1


def test_parse_retry_after_ignores_garbage():
    """A malformed Retry-After falls back to backoff."""
    assert retry.parse_retry_after("soon") is None
    assert retry.parse_retry_after("") is None
    assert retry.parse_retry_after("7") == 7.0
