"""The call log: one redacted ``CallLog`` row per call (SECURITY 25-26).

Rows hold method, host and path without query values, status, latency, attempts, the
error's class and a redacted message, the remote request id and the token's kid/jti;
never a header value, token, assertion or key. A failure to write the log is logged and
swallowed: it never costs the caller its response.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from .models import CallLog, LogCalls

if TYPE_CHECKING:
    from .http.session import Outcome
    from .models import Integration

logger = logging.getLogger(__name__)

REQUEST_ID_HEADERS = ("X-Request-Id", "X-Github-Request-Id", "X-Amzn-Requestid", "Request-Id", "X-Correlation-Id")
MAX_ERROR_CHARS = 500
# Things that look like credentials inside free text from exceptions or remote bodies.
_SECRET_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"(?i)(bearer|token|basic|jwt)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"-----BEGIN[^-]*-----.*?(-----END[^-]*-----|$)", re.S),
    re.compile(r"(?i)((?:assertion|token|secret|password|key|code)=)[^&\s]+"),
]


def redact_url(url: str) -> str:
    """Scheme, host and path; query values and userinfo dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "&".join(f"{pair.split('=', 1)[0]}=…" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Mask credential-shaped substrings and CR/LF (log injection) in remote text."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + "[redacted]", text)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text[:MAX_ERROR_CHARS]


def describe_error(error: BaseException) -> str:
    return redact_text(f"{type(error).__name__}: {error}")


def should_log(integration: Integration, ok: bool, is_test: bool) -> bool:
    if is_test or integration.log_calls == LogCalls.ALL:
        return True
    return integration.log_calls == LogCalls.ERRORS and not ok


def build_row(
    integration: Integration,
    source: str,
    outcome: Outcome,
    *,
    ok: bool | None = None,
    is_test: bool = False,
    error: str = "",
) -> CallLog:
    response = outcome.response
    if ok is None:
        ok = response is not None and response.ok
    if not error and outcome.error is not None:
        error = describe_error(outcome.error)
    request_id = ""
    kid = jti = ""
    if response is not None:
        for name in REQUEST_ID_HEADERS:
            if name in response.headers:
                request_id = redact_text(response.headers[name])[:200]
                break
        token = getattr(response.request, "_integrations_token", None)
        if token is not None:
            kid, jti = token.kid[:200], token.jti[:100]
    return CallLog(
        integration=integration,
        source=source,
        is_test=is_test,
        method=outcome.method[:10],
        url=redact_url(outcome.url)[:1000],
        status_code=outcome.status_code,
        ok=ok,
        duration_ms=outcome.duration_ms,
        attempts=outcome.attempts,
        error=error,
        request_id=request_id,
        token_kid=kid,
        token_jti=jti,
    )


def record_call(
    integration: Integration,
    source: str,
    outcome: Outcome,
    *,
    ok: bool | None = None,
    is_test: bool = False,
    error: str = "",
) -> CallLog | None:
    """Write the call's row if the integration's ``log_calls`` asks for it."""
    if ok is None:
        ok = outcome.response is not None and outcome.response.ok
    if not should_log(integration, ok, is_test):
        return None
    row = build_row(integration, source, outcome, ok=ok, is_test=is_test, error=error)
    try:
        row.save()
    except Exception:
        logger.exception("could not write the call log row for %s", integration.slug)
    return row
