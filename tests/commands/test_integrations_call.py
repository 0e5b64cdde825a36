"""integrations_call: one logged call, status and redacted headers on stderr, body on
stdout, exit 0 on 2xx, 1 otherwise, 2 for a usage error."""

from __future__ import annotations

import json

import pytest

from integrations.models import CallLog, Integration
from tests import jose
from tests.commands.helpers import manage
from tests.keys import CANARY, HMAC_SECRET
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(server, make_integration):
    make_integration("billing", base_url=f"{server.url}/api/")
    return server


def test_2xx_prints_status_headers_body_and_logs(api):
    """reference.md: exit 0 on 2xx; the body is the only stdout; the call is logged (source
    command) and went out with a valid JWT (security.md #4)."""
    reply = Reply(200, {"invoices": [1, 2]}, {"X-Request-Id": "req-7"})
    api.route("GET", "/api/invoices", lambda r: reply)
    ran = manage("integrations_call", "billing", "get", "invoices")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == {"invoices": [1, 2]}
    assert ran.err.startswith("200 OK") and "X-Request-Id: req-7" in ran.err
    jose.verify(api.requests[-1].bearer, HMAC_SECRET, "HS256")
    row = CallLog.objects.get()
    assert (row.source, row.method, row.status_code, row.ok) == ("command", "GET", 200, True)


def test_credential_headers_are_redacted(api):
    """security.md #26: Set-Cookie, Authorization-like, token and key headers and JWT-shaped
    values never reach the output."""
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    headers = {
        "Set-Cookie": f"session={CANARY}",
        "X-Api-Key": CANARY,
        "X-Auth-Token": CANARY,
        "Proxy-Authenticate": CANARY,
        "X-Echo": jwt_like,
        "X-Plain": "visible",
    }
    api.route("GET", "/api/x", lambda r: Reply(200, "ok", headers))
    ran = manage("integrations_call", "billing", "GET", "/x")
    assert CANARY not in ran.out + ran.err and jwt_like not in ran.err
    assert "Set-Cookie: [redacted]" in ran.err and "X-Plain: visible" in ran.err


def test_data_and_headers_are_sent(api):
    """--data sends a JSON body, --header adds headers."""
    api.route("POST", "/api/invoices", lambda r: Reply(201, {"id": 9}))
    ran = manage("integrations_call", "billing", "POST", "invoices",
              "--data", '{"amount": 12}', "--header", "X-Trace: abc")
    assert ran.code == 0, ran.err
    sent = api.requests[-1]
    assert json.loads(sent.body) == {"amount": 12} and sent.headers["X-Trace"] == "abc"


def test_data_from_a_file(api, tmp_path):
    """--data @FILE reads the JSON body from a file."""
    api.route("PUT", "/api/x", lambda r: Reply(204))
    body = tmp_path / "body.json"
    body.write_text('{"a": [1]}')
    assert manage("integrations_call", "billing", "PUT", "x", "--data", f"@{body}").code == 0
    assert json.loads(api.requests[-1].body) == {"a": [1]}


def test_non_2xx_exits_1_and_still_shows_the_body(api):
    """reference.md: any status but 2xx exits 1; the body is still printed for diagnosis."""
    api.route("GET", "/api/x", lambda r: Reply(404, {"error": "no such invoice"}))
    ran = manage("integrations_call", "billing", "GET", "x")
    assert ran.code == 1 and "no such invoice" in ran.out and "status 404" in ran.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["billing", "GET", "x", "--data", "{oops"], "--data is not valid JSON"),
        (["billing", "GET", "x", "--data", "@/nonexistent/body.json"],
         "cannot read /nonexistent/body.json"),
        (["billing", "GET", "x", "--header", "no-colon"], "is not NAME:VALUE"),
        (["billing", "FETCH", "x"], "unknown method 'FETCH'"),
        (["nope", "GET", "x"], "no integration with slug 'nope'"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_no_call(api, args, message):
    """Each user mistake ends with one clear line and exit 2; nothing is sent."""
    ran = manage("integrations_call", *args)
    assert ran.code == 2 and message in ran.err
    assert api.requests == [] and not CallLog.objects.exists()


def test_disabled_or_unreachable_exit_1_without_a_traceback(api):
    """reference.md: a disabled integration or a failed call exits 1 with a one-line reason."""
    Integration.objects.filter(slug="billing").update(enabled=False)
    ran = manage("integrations_call", "billing", "GET", "x")
    assert ran.code == 1 and "disabled" in ran.err
    Integration.objects.filter(slug="billing").update(enabled=True, base_url="http://127.0.0.1:9/api/")
    ran = manage("integrations_call", "billing", "GET", "x")
    assert ran.code == 1 and "call failed: " in ran.err and "Traceback" not in ran.err
