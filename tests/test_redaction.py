"""Secrets stay out of every output (security.md #26): logs at DEBUG (urllib3 included),
call log rows, exception text and Django's error reporter.

The CANARY is both part of the integration's signing secret and a query value the app
sends; the live token is what went on the wire. Each is pushed through a success, a
4xx, a timeout and exceptions, and looked for everywhere.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.views.debug import ExceptionReporter

from integrations import services
from integrations.models import CallLog, Integration
from tests.http.servers import RawServer, closed_port, silent
from tests.keys import CANARY, HMAC_SECRET
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[Collect]:
    """Every logger at DEBUG, urllib3's included, collected in formatted form."""
    handler = Collect()
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name in ["urllib3", *logging.root.manager.loggerDict]
        if not isinstance(logging.root.manager.loggerDict.get(name), logging.PlaceHolder)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


def report(call: Callable[[], Any]) -> tuple[BaseException, str]:
    """Run ``call``, which must raise; return the error and Django's error report text
    (what a production error email holds)."""
    try:
        call()
    except Exception:
        exc_type, exc, tb = sys.exc_info()
        assert exc is not None
        return exc, ExceptionReporter(None, exc_type, exc, tb).get_traceback_text()
    raise AssertionError("the call did not fail")


# The canary is written inline, never held in a local: the frames of the caller's own
# code would show it in the error report, and that is not what is under test.
def call_with_canary(slug: str) -> requests.Response:
    return services.request(slug, "GET", "x", params={"api_key": CANARY})


def call_elsewhere_with_canary() -> requests.Response:
    return services.request("billing", "GET", f"http://other.example/?k={CANARY}")


def test_canary_and_token_appear_nowhere(server, make_integration, debug_logs, settings):
    """security.md #26: through success, 4xx, timeout and exceptions, with DEBUG logging on
    every logger, neither the secret nor the token reaches a log line, a CallLog row, an
    exception's str/repr or Django's error report."""
    settings.INTEGRATIONS_RETRY_BACKOFF = 0.001
    server.route("GET", "/api/ok", lambda r: Reply(200, {"ok": True}))
    # A remote that echoes the token it refused back in its challenge.
    server.route(
        "GET",
        "/api/denied",
        lambda r: Reply(
            401,
            b"",
            {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{r.bearer}"'},
        ),
    )
    make_integration(base_url=f"{server.url}/api/", auth_config={
        "algorithm": "HS256", "key_id": "k1", "claims": {"aud": "b", "jti": True},
    })
    secret_params = {"api_key": CANARY}

    assert services.request("billing", "GET", "ok", params=secret_params).status_code == 200
    token = server.requests[0].bearer
    assert token.startswith("ey") and server.requests[0].query["api_key"] == [CANARY]
    assert services.request("billing", "GET", "denied", params=secret_params).status_code == 401

    failures: list[tuple[BaseException, str]] = []
    with RawServer(silent(2)) as slow:
        make_integration("slow", base_url=f"{slow.url}/api/", timeout=0.2)
        failures.append(report(lambda: call_with_canary("slow")))
    make_integration("down", base_url=f"http://127.0.0.1:{closed_port()}/api/")
    failures.append(report(lambda: call_with_canary("down")))
    failures.append(report(call_elsewhere_with_canary))
    row = services.run_test("down")
    assert not row.ok

    kinds = [type(error) for error, _ in failures]
    assert issubclass(kinds[0], requests.Timeout) and issubclass(kinds[1], requests.ConnectionError)
    assert any(
        "urllib3.connectionpool" in line and "api_key=[redacted]" in line
        for line in debug_logs.lines
    )
    rows = str(list(CallLog.objects.values()))
    assert CallLog.objects.count() == 6 and "api_key=…" in rows

    outputs = {
        "logs": "\n".join(debug_logs.lines),
        "call log": rows,
        "exceptions": " ".join(f"{error} {error!r}" for error, _ in failures),
        "error reports": "\n".join(text for _, text in failures),
        "reprs": " ".join(
            repr(obj) + str(obj)
            for obj in [services.get_session("billing"), services.get_session("billing").provider,
                        *Integration.objects.all(), *CallLog.objects.all()]
        ),
    }
    for where, text in outputs.items():
        for secret in (CANARY, HMAC_SECRET, token):
            assert secret not in text, f"secret found in {where}"
    assert "services.py" in outputs["error reports"]  # the reports did cover our frames


def test_redact_text_masks_credentials_and_line_breaks():
    """security.md #26: JWTs, bearer values, PEM blocks, query values and CR/LF in remote text."""
    from integrations.redaction import redact_text

    text = (
        "Bearer abcdefgh12345678 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln "
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- "
        "https://x.example/p?code=123&state=abc\r\nInjected: header"
    )
    clean = redact_text(text)
    for leaked in ("abcdefgh12345678", "eyJhbGci", "MIIB", "123", "abc", "\r", "\n"):
        assert leaked not in clean
    assert "?code=[redacted]&state=[redacted]" in clean and "\\r\\nInjected" in clean


def test_nul_is_escaped_in_logged_text_and_urls(server, make_integration):
    """A NUL in remote text or a URL reaches the call log escaped (or percent-encoded,
    as requests sends it): PostgreSQL refuses NUL in text, and the row must not be lost
    for it."""
    from integrations import services
    from integrations.models import CallLog
    from integrations.redaction import redact_text, redact_url

    assert redact_text("a\x00b") == "a\\x00b"
    assert redact_url("https://x.example/a\x00b?q=1") == "https://x.example/a\\x00b?q=…"
    make_integration(base_url=f"{server.url}/api/")
    services.request("billing", "GET", "a\x00b")  # sent percent-encoded by requests
    assert CallLog.objects.get().url.endswith("/api/a%00b")


def test_redact_url_keeps_names_not_values():
    """security.md #25-26: the logged URL keeps scheme, host, port, path and query names."""
    from integrations.redaction import redact_url

    assert (
        redact_url("https://u:p@API.example:8443/v1/items?id=7&token=s#frag")
        == "https://api.example:8443/v1/items?id=…&token=…"
    )
    assert redact_url("http://[::1/x?k=secret") == "[malformed URL]"
    assert redact_url("http://h:99999/x") == "[malformed URL]"
