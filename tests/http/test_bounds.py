"""Bounds on every call (security.md #15-17): timeouts, an overall deadline, a size cap."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest
import requests

from integrations import services
from integrations.exceptions import DeadlineExceeded, IntegrationError, ResponseTooLarge
from integrations.models import CallLog
from tests.http.servers import RawServer, drip, silent
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_cap(settings):
    settings.INTEGRATIONS_MAX_RESPONSE_BYTES = 64 * 1024


def test_dripping_body_stops_at_the_deadline(make_integration):
    """security.md #16: one byte every 0.4 s never trips the read timeout, yet the call ends
    at its deadline with DeadlineExceeded, an IntegrationError."""
    with RawServer(drip(0.4)) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=1)
        with pytest.raises(DeadlineExceeded) as caught:
            services.request("billing", "GET", "x", deadline=1.0)
    assert isinstance(caught.value, IntegrationError)
    assert isinstance(caught.value, requests.Timeout)  # callers catching requests' types
    row = CallLog.objects.get()
    assert row.error.startswith("DeadlineExceeded") and not row.ok
    assert row.duration_ms < 1000 + 2 * 400  # stopped by the deadline, not by EOF


def test_default_deadline_is_the_read_timeout_times_the_factor(make_integration, settings):
    """security.md #16: without an explicit deadline, DEADLINE_FACTOR x read timeout bounds it
    (or connect + read timeout, when that is longer)."""
    settings.INTEGRATIONS_DEADLINE_FACTOR = 1.5
    settings.INTEGRATIONS_CONNECT_TIMEOUT = 0.2
    with RawServer(drip(0.3)) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=0.5)
        with pytest.raises(DeadlineExceeded):
            services.request("billing", "GET", "x")


def test_read_timeout_raises_requests_timeout(make_integration):
    """security.md #15: a silent server trips the integration's read timeout."""
    with RawServer(silent(3)) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=0.3)
        with pytest.raises(requests.Timeout):
            services.request("billing", "POST", "x")
    assert CallLog.objects.get().error.startswith("ReadTimeout")


def test_declared_length_over_the_cap_is_refused_unread(server, make_integration, small_cap):
    """security.md #17: a Content-Length over the cap aborts before the body is read."""
    server.route("GET", "/api/big", lambda r: Reply(200, b"x" * (10 * 1024 * 1024)))
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(ResponseTooLarge, match="declares 10485760 bytes") as caught:
        services.request("billing", "GET", "big")
    assert isinstance(caught.value, requests.RequestException)
    assert CallLog.objects.get().error.startswith("ResponseTooLarge")


def test_default_cap_is_ten_mebibytes(server, make_integration):
    """security.md #17: with no override, a 10 MiB + 1 body is refused."""
    server.route("GET", "/api/big", lambda r: Reply(200, b"x" * (10 * 1024 * 1024 + 1)))
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(ResponseTooLarge):
        services.request("billing", "GET", "big")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bomb_stops_at_the_cap_of_decoded_bytes(
    server, make_integration, small_cap, encoding
):
    """security.md #17: a small compressed body that inflates past the cap aborts cleanly."""
    plain = b"\0" * (8 * 1024 * 1024)
    body = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    assert len(body) < 64 * 1024
    server.route(
        "GET", "/api/bomb", lambda r: Reply(200, body, {"Content-Encoding": encoding})
    )
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(ResponseTooLarge, match="body exceeds the 65536-byte cap"):
        services.request("billing", "GET", "bomb")


def test_compressed_body_under_the_cap_is_decoded(server, make_integration, small_cap):
    """Compressed responses within the cap arrive decoded, as with plain requests."""
    body = gzip.compress(b'{"ok": true}')
    server.route(
        "GET",
        "/api/z",
        lambda r: Reply(
            200, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        ),
    )
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "z").json() == {"ok": True}


def test_unannounced_length_is_counted_as_it_arrives(make_integration, small_cap):
    """security.md #17: a body without Content-Length (read to close) is capped too."""

    def endless(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(200):
            conn.sendall(b"y" * 4096)

    with RawServer(endless) as srv:
        make_integration(base_url=f"{srv.url}/api/")
        with pytest.raises(ResponseTooLarge):
            services.request("billing", "GET", "x")


def test_caller_streaming_gets_an_unread_body(server, make_integration):
    """stream=True hands the caller the raw body (the Content-Length cap still applies)."""
    server.route("GET", "/api/s", lambda r: Reply(200, b"abc" * 1000))
    make_integration(base_url=f"{server.url}/api/")
    response = services.request("billing", "GET", "s", stream=True)
    assert b"".join(response.iter_content(1024)) == b"abc" * 1000


def test_dripping_headers_stop_at_the_deadline(make_integration):
    """security.md #16: a server that drips the response head (one header byte every 0.4 s)
    is cut off at the deadline by the watchdog, not after the whole head."""

    def drip_head(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):
            conn.sendall(b"z")
            time.sleep(0.4)

    with RawServer(drip_head) as srv:
        make_integration(base_url=f"{srv.url}/api/", timeout=1)
        with pytest.raises(DeadlineExceeded):
            services.request("billing", "GET", "x", deadline=1.0)
    assert CallLog.objects.get().duration_ms < 1000 + 2 * 400


def test_watchdog_leaves_finished_calls_alone(server, make_integration):
    """A call that got its response in time keeps its pooled connection usable after its
    deadline has passed (the watchdog only touches calls still waiting)."""
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x", deadline=0.2).json() == {"ok": True}
    time.sleep(0.3)
    assert services.request("billing", "GET", "x").json() == {"ok": True}


def test_finished_calls_leave_nothing_watched(server, make_integration):
    """The watchdog forgets a call once its body is read, so its heap does not grow with
    the number of calls made."""
    from integrations.http.bounds import watchdog

    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(50):
        services.request("billing", "GET", "x")
    assert watchdog._heap == [] and watchdog._watched == {}


def test_dripping_tls_handshake_stops_at_the_deadline(make_integration):
    """security.md #16: a server that drips its TLS handshake (a record header promising 16 KB,
    then a byte every 0.4 s) is cut off at the deadline too."""

    def drip_handshake(conn):
        conn.sendall(b"\x16\x03\x03\x40\x00")
        for _ in range(100):
            conn.sendall(b"\x00")
            time.sleep(0.4)

    with RawServer(drip_handshake, read_head=False) as srv:
        make_integration(base_url=srv.url.replace("http://", "https://") + "/api/", timeout=1)
        with pytest.raises(DeadlineExceeded):
            services.request("billing", "GET", "x", deadline=1.0)


def test_head_and_empty_bodies_leave_the_connection_reusable(server, make_integration):
    """Bodyless answers (HEAD, 204) are read as empty and the pooled connection is reused
    for the next call."""
    server.route("HEAD", "/api/x", lambda r: Reply(200, b"", {"Content-Length": "123"}))
    server.route("DELETE", "/api/x", lambda r: Reply(204, b""))
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/")
    session = services.get_session("billing")
    assert session.head("x").content == b""
    assert session.delete("x").status_code == 204
    assert session.get("x").json() == {"ok": True}
