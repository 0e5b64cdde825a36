"""integrations.services and the call log (reference.md: Python API, Call log;
security.md #25-26)."""

from __future__ import annotations

import logging
import re
import time
from email.utils import formatdate

import pytest
import requests
from django.db import connection, transaction

from integrations import services
from integrations.exceptions import IntegrationDisabled, IntegrationError, IntegrationNotFound
from integrations.models import CallLog, Integration
from tests.http.servers import RawServer
from tests.keys import HMAC_SECRET
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


def test_get_session_is_a_requests_session(server, make_integration):
    """reference.md: get_session returns a requests.Session with JWT auth attached."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    session = services.get_session("billing")
    assert isinstance(session, requests.Session)
    session.get("x")
    assert server.requests[0].bearer.startswith("ey")


@pytest.mark.parametrize("call", ["get_session", "request", "run_test"])
def test_unknown_slug_raises_integration_not_found(db, call):
    """reference.md: unknown slugs raise a subclass of IntegrationError (also a LookupError)."""
    args = {"get_session": ("nope",), "request": ("nope", "GET", "x"), "run_test": ("nope",)}
    with pytest.raises(IntegrationNotFound) as caught:
        getattr(services, call)(*args[call])
    assert isinstance(caught.value, IntegrationError) and isinstance(caught.value, LookupError)


def test_disabled_slug_raises_and_its_test_call_is_logged_as_failed(make_integration, server):
    """reference.md: a disabled integration raises IntegrationDisabled; run_test logs "disabled"."""
    make_integration(base_url=f"{server.url}/api/", enabled=False)
    with pytest.raises(IntegrationDisabled):
        services.request("billing", "GET", "x")
    row = services.run_test("billing")
    assert not row.ok and row.error == "disabled" and row.is_test
    assert server.requests == []


def test_row_fields(server, make_integration):
    """security.md #25: source, method, URL without query values, status, ok, duration,
    attempts, remote request id, token kid and jti."""
    server.route("GET", "/api/items", lambda r: Reply(200, {}, {"X-Request-Id": "req-42"}))
    make_integration(
        base_url=f"{server.url}/api/",
        auth_config={"algorithm": "HS256", "key_id": "k1", "claims": {"aud": "b", "jti": True}},
    )
    services.request("billing", "GET", "items", params={"q": "private words", "page": "2"})
    row = CallLog.objects.get()
    assert row.source == "api" and row.method == "GET" and not row.is_test
    assert row.url == f"{server.url}/api/items?q=…&page=…"
    assert row.status_code == 200 and row.ok and row.attempts == 1 and row.error == ""
    assert row.duration_ms >= 0 and row.request_id == "req-42"
    assert row.token_kid == "k1" and len(row.token_jti) == 36
    assert "private" not in str(CallLog.objects.values().get())


def test_request_id_is_taken_by_header_priority_whatever_the_case():
    """The most specific request-id header wins, names match in any case, and the value
    is redacted like any other remote text."""
    from requests.structures import CaseInsensitiveDict

    from integrations.calllog import find_request_id

    headers = CaseInsensitiveDict(
        {"cf-ray": "ray-1", "x-github-request-id": "gh-2", "Content-Type": "text/plain"}
    )
    assert find_request_id(headers) == "gh-2"
    assert find_request_id(CaseInsensitiveDict({"X-Request-Id": ""})) == ""
    assert find_request_id(CaseInsensitiveDict({"Request-Id": "Bearer abcdefghijkl"})) == (
        "Bearer [redacted]"
    )


def test_source_comes_from_the_session(server, make_integration):
    """reference.md: a session got for a command logs source "command"."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    services.get_session("billing", source="command").get("x")
    assert CallLog.objects.get().source == "command"


@pytest.mark.parametrize(
    ("log_calls", "logged_statuses"),
    [("all", [200, 500]), ("errors", [500]), ("none", [])],
)
def test_log_calls_setting(server, make_integration, log_calls, logged_statuses):
    """reference.md: log_calls all / errors / none decides which calls leave a row."""
    server.route("GET", "/api/ok", lambda r: Reply(200, {}))
    server.route("GET", "/api/fail", lambda r: Reply(500, {}))
    make_integration(base_url=f"{server.url}/api/", log_calls=log_calls)
    services.request("billing", "GET", "ok")
    services.request("billing", "GET", "fail")
    assert sorted(CallLog.objects.values_list("status_code", flat=True)) == logged_statuses


def test_test_calls_are_always_logged(server, make_integration):
    """reference.md: run_test logs even with log_calls none, and checks expect_status."""
    server.route("GET", "/api/health", lambda r: Reply(200, {}))
    make_integration(
        base_url=f"{server.url}/api/",
        log_calls="none",
        test_request={"method": "GET", "path": "health", "expect_status": [200]},
    )
    row = services.run_test("billing", source="command")
    assert row.pk and row.ok and row.is_test and row.source == "command"


def test_token_refused_is_explained(server, make_integration):
    """Auth failures are classified: the WWW-Authenticate error reaches the row."""
    challenge = 'Bearer realm="api", error="invalid_token", error_description="The token expired"'
    server.route("GET", "/api/x", lambda r: Reply(401, b"", {"WWW-Authenticate": challenge}))
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x").status_code == 401
    row = CallLog.objects.get()
    assert row.error == "HTTP 401 Unauthorized; token refused (invalid_token: The token expired)"
    assert row.attempts == 2


@pytest.mark.parametrize(("offset", "suspected"), [(600, True), (-600, True), (5, False)])
def test_clock_skew_is_suspected_from_the_date_header(make_integration, offset, suspected):
    """A 401 whose Date differs from our clock by more than clock_skew says so."""

    def refuse(conn):
        date = formatdate(time.time() + offset, usegmt=True)
        conn.sendall(
            f"HTTP/1.1 401 Unauthorized\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n".encode()
        )

    with RawServer(refuse) as srv:
        make_integration(
            base_url=f"{srv.url}/api/",
            auth_config={"algorithm": "HS256", "claims": {"aud": "b"}, "clock_skew": 60},
        )
        services.request("billing", "GET", "x")
    error = CallLog.objects.get().error
    assert ("clock skew suspected" in error) is suspected
    if suspected:
        direction = "ahead of" if offset > 0 else "behind"
        assert re.search(rf"(599|600|601) s {direction} ours \(tolerated: 60 s\)", error)


def test_a_failing_log_write_never_loses_the_response(server, make_integration, caplog):
    """The caller gets its response when the call log cannot be written (here: its table
    is gone), and inside a transaction the failed insert leaves the transaction usable."""
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/")
    services.get_session("billing")
    table = CallLog._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        with caplog.at_level(logging.ERROR, logger="integrations.calllog"):
            response = services.request("billing", "GET", "x")
        assert response.json() == {"ok": True}
        assert Integration.objects.filter(slug="billing").exists()  # transaction still fine
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert "could not write the call log row for billing" in caplog.text
    assert HMAC_SECRET not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_failing_log_write_outside_a_transaction_is_logged(server, make_integration, caplog):
    """Outside a transaction the row goes straight to the driver (SQLite); a failure there
    is logged and swallowed too."""
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/")
    table = CallLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        with caplog.at_level(logging.ERROR, logger="integrations.calllog"):
            assert services.request("billing", "GET", "x").json() == {"ok": True}
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert "could not write the call log row for billing" in caplog.text


def test_execute_wrappers_see_the_log_insert(server, make_integration):
    """Instrumentation on the connection (APM, query counting) sees the call log's
    INSERT: the direct driver call is only taken when nothing is watching."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    services.get_session("billing")
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        services.request("billing", "GET", "x")
    assert any(sql.startswith(f'INSERT INTO "{CallLog._meta.db_table}"') for sql in seen)
    assert CallLog.objects.count() == 1


def test_errors_from_the_session_are_logged_with_their_class(make_integration):
    """security.md #25: a refused request is a row with the error class and no status."""
    make_integration(base_url="http://127.0.0.1:9/api/")
    with pytest.raises(IntegrationError):
        services.request("billing", "GET", "http://elsewhere.example/x")
    row = CallLog.objects.get()
    assert row.error.startswith("RequestRefused: billing: absolute URL to another host refused")


def operator_client(client, django_user_model):
    """A client logged in as staff holding run_test_call (what the example view needs;
    tests/project covers who may call it)."""
    from django.contrib.auth.models import Permission

    person = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename="run_test_call"))
    client.force_login(person)
    return client


def test_example_view_calls_the_test_path(client, django_user_model, server, make_integration):
    """project/: the example endpoint calls the test path, logged as source "api"."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"up": True}))
    make_integration(base_url=f"{server.url}/api/", test_request={"path": "health"})
    client = operator_client(client, django_user_model)
    assert client.post("/example/billing/").json() == {
        "integration": "billing", "status": 200, "ok": True, "body": {"up": True}
    }
    assert CallLog.objects.get().source == "api"
    assert client.post("/example/nope/").status_code == 404


def test_example_view_reports_failures_as_502(
    client, django_user_model, make_integration, settings
):
    """project/: a failed call is a 502 with the redacted error, never a traceback."""
    settings.INTEGRATIONS_RETRY_BACKOFF = 0.001
    make_integration(base_url="http://127.0.0.1:9/api/")
    response = operator_client(client, django_user_model).post("/example/billing/")
    assert response.status_code == 502 and response.json()["error"].startswith("ConnectionError")


@pytest.mark.django_db(transaction=True)
def test_background_log_writer_writes_every_row(server, make_integration, settings):
    """LOG_WRITER=background: calls only queue their rows; one thread writes them in
    batches, and flush() waits until all are in. Test calls stay synchronous."""
    from integrations.calllog import writer

    settings.INTEGRATIONS_LOG_WRITER = "background"
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/", test_request={"path": "x"})
    for _ in range(25):
        services.request("billing", "GET", "x")
    assert writer.flush(timeout=10)
    assert CallLog.objects.filter(is_test=False, ok=True).count() == 25
    # (After the flush: in-memory SQLite takes no second writer while a batch is open.)
    test_row = services.run_test("billing")
    assert test_row.pk is not None and CallLog.objects.filter(pk=test_row.pk, is_test=True).exists()


@pytest.mark.django_db(transaction=True)
def test_background_writer_keeps_good_rows_of_a_failed_batch(make_integration, caplog):
    """A batch with a row that cannot be written (here one the table's CHECK refuses)
    still writes the others."""
    from integrations.calllog import BackgroundWriter, row_values
    from integrations.http.outcome import Outcome

    writer = BackgroundWriter()
    good, bad = make_integration(), make_integration("gone")
    rows = [
        (row.slug, row_values(row, "api", Outcome("GET", url, time.perf_counter()), ok=False))
        for row, url in [(good, "http://127.0.0.1:9/a"), (bad, "http://127.0.0.1:9/b")]
    ]
    rows[1][1]["duration_ms"] = -1
    with caplog.at_level(logging.ERROR, logger="integrations.calllog"):
        for slug, values in rows:
            assert writer.submit(slug, values)
        assert writer.flush(timeout=10)
    assert list(CallLog.objects.values_list("url", flat=True)) == ["http://127.0.0.1:9/a"]
    assert "could not write the call log row for gone" in caplog.text
