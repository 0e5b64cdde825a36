"""The optional circuit breaker (security.md #19): after N failed calls in a row, fail fast
for a while, then let one trial call decide."""

from __future__ import annotations

import pytest
import requests

from integrations import services
from integrations.exceptions import CircuitOpen, IntegrationError
from integrations.http import breaker
from integrations.models import CallLog
from tests.http.servers import closed_port
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def now(monkeypatch):
    """The breaker's clock, moved by hand (no sleeping, no timed assertions)."""
    current = [1000.0]
    monkeypatch.setattr(breaker, "clock", lambda: current[0])
    return current


@pytest.fixture
def circuit(settings, now):
    settings.INTEGRATIONS_CIRCUIT_FAILURES = 3
    settings.INTEGRATIONS_CIRCUIT_RESET = 30
    settings.INTEGRATIONS_RETRY_TOTAL = 0
    return now


def test_opens_after_failures_in_a_row_and_fails_fast(server, make_integration, circuit):
    """security.md #19: three 503s in a row open the circuit; the next call is not sent,
    raises CircuitOpen (an IntegrationError and a requests.RequestException) and is
    logged with no attempt."""
    server.route("GET", "/api/x", lambda r: Reply(503, b"down"))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(3):
        assert services.request("billing", "GET", "x").status_code == 503
    with pytest.raises(CircuitOpen) as raised:
        services.request("billing", "GET", "x")
    assert isinstance(raised.value, IntegrationError)
    assert isinstance(raised.value, requests.RequestException)
    assert "failing fast for another 30 s" in str(raised.value)
    assert len(server.requests) == 3
    row = CallLog.objects.order_by("id").last()
    assert row.attempts == 0 and row.status_code is None
    assert row.error.startswith("CircuitOpen: billing: circuit open after 3 failed calls")
    assert row.url.endswith("/api/x")


def test_a_success_resets_the_count(server, make_integration, circuit):
    """Only failures in a row count: a success in between starts the count again."""
    replies = iter([503, 503, 200, 503, 503, 200])
    server.route("GET", "/api/x", lambda r: Reply(next(replies), b""))
    make_integration(base_url=f"{server.url}/api/")
    statuses = [services.request("billing", "GET", "x").status_code for _ in range(6)]
    assert statuses == [503, 503, 200, 503, 503, 200]


def test_trial_call_after_the_reset_closes_or_reopens(server, make_integration, circuit):
    """After CIRCUIT_RESET seconds one call goes through: a failure opens the circuit
    for another period, a success closes it."""
    status = [503]
    server.route("GET", "/api/x", lambda r: Reply(status[0], b""))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(3):
        services.request("billing", "GET", "x")
    circuit[0] += 31
    assert services.request("billing", "GET", "x").status_code == 503  # the trial
    with pytest.raises(CircuitOpen):
        services.request("billing", "GET", "x")
    circuit[0] += 31
    status[0] = 200
    assert services.request("billing", "GET", "x").status_code == 200
    assert services.request("billing", "GET", "x").status_code == 200
    assert len(server.requests) == 6


def test_connection_errors_count_and_client_errors_do_not(server, make_integration, circuit):
    """A refused connection is the remote being down; a 404 or a malformed header is
    the caller's request being wrong and never opens the circuit."""
    server.route("GET", "/api/missing", lambda r: Reply(404, b""))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(5):
        assert services.request("billing", "GET", "missing").status_code == 404
    for _ in range(5):  # a malformed request is the caller's mistake, not an outage
        with pytest.raises(requests.exceptions.InvalidHeader):
            services.request("billing", "GET", "missing", headers={"X-Bad": "a\nb"})
    assert services.request("billing", "GET", "missing").status_code == 404
    make_integration("down", base_url=f"http://127.0.0.1:{closed_port()}/api/")
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            services.request("down", "GET", "x")
    with pytest.raises(CircuitOpen):
        services.request("down", "GET", "x")


def test_a_test_call_goes_through_an_open_circuit(server, make_integration, circuit):
    """An operator's test call is always sent, as the trial: once the remote is fixed it
    closes the circuit at once, without waiting for the reset."""
    status = [503]
    server.route("GET", "/api/x", lambda r: Reply(status[0], b""))
    make_integration(base_url=f"{server.url}/api/", test_request={"path": "x"})
    for _ in range(3):
        services.request("billing", "GET", "x")
    with pytest.raises(CircuitOpen):
        services.request("billing", "GET", "x")
    status[0] = 200
    assert services.run_test("billing").ok
    assert services.request("billing", "GET", "x").status_code == 200


def test_an_edit_closes_the_circuit(server, make_integration, circuit):
    """The state lives in the session: saving the integration builds a new one."""
    server.route("GET", "/api/x", lambda r: Reply(503, b""))
    integration = make_integration(base_url=f"{server.url}/api/")
    for _ in range(3):
        services.request("billing", "GET", "x")
    integration.timeout = 7
    integration.save()
    assert services.request("billing", "GET", "x").status_code == 503


def test_off_by_default(server, make_integration, settings):
    """Without INTEGRATIONS_CIRCUIT_FAILURES every call is sent, however many fail."""
    settings.INTEGRATIONS_RETRY_TOTAL = 0
    server.route("GET", "/api/x", lambda r: Reply(503, b""))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(10):
        services.request("billing", "GET", "x")
    assert len(server.requests) == 10


def test_half_open_lets_one_trial_through_at_a_time(now):
    """Threads arriving while the trial runs fail fast instead of piling onto a remote
    that may still be down."""
    circuit = breaker.CircuitBreaker(failures=2, reset_after=10)
    for _ in range(2):
        circuit.allow("x")
        circuit.record(failed=True)
    assert circuit.state == "open"
    now[0] += 11
    assert circuit.state == "half-open"
    circuit.allow("x")  # the trial
    with pytest.raises(CircuitOpen, match="a trial call is running"):
        circuit.allow("x")
    circuit.record(failed=False)
    assert circuit.state == "closed"
    circuit.allow("x")
