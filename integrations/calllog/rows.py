"""What a call-log row says about one call (security.md #25-26).

Rows hold method, host and path without query values, status, latency, attempts, the
error's class and a redacted message, the remote request id and the token's kid/jti;
never a header value, token, assertion or key. Auth failures are explained where the
response allows: the ``WWW-Authenticate`` error, and "clock skew suspected" when the
remote's ``Date`` is further from ours than the integration tolerates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from django.utils import timezone

from ..models import CallLog
from ..redaction import redact_text, redact_url

if TYPE_CHECKING:
    from ..http.outcome import Outcome
    from ..models import Account, Integration

# Where remote APIs put the id their support asks for, most specific first.
REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "X-Github-Request-Id",
    "X-Amzn-Requestid",
    "Request-Id",
    "X-Correlation-Id",
    "Cf-Ray",
)
_REQUEST_ID_RANK = {name.lower(): rank for rank, name in enumerate(REQUEST_ID_HEADERS)}
DEFAULT_CLOCK_SKEW = 30
_AUTH_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def describe_error(error: BaseException) -> str:
    return redact_text(f"{type(error).__name__}: {error}")


def clock_offset(response: requests.Response) -> float | None:
    """Seconds the remote's clock is ahead of ours (negative: behind), from ``Date``."""
    date = response.headers.get("Date")
    if not date:
        return None
    try:
        remote = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    return remote - time.time()


def describe_response(response: requests.Response, clock_skew: float) -> str:
    """Why a non-2xx response failed, as far as it says; "" for a success."""
    if response.ok:
        return ""
    status = response.status_code
    parts = [f"HTTP {status} {response.reason or ''}".rstrip()]
    if status in (401, 403):
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _AUTH_PARAM.finditer(response.headers.get("WWW-Authenticate", ""))
        }
        if params.get("error"):
            reason = params["error"]
            if params.get("error_description"):
                reason += f": {params['error_description']}"
            parts.append(f"token refused ({reason})")
        elif status == 401:
            parts.append("token refused")
        offset = clock_offset(response)
        if offset is not None and abs(offset) > clock_skew:
            direction = "ahead of" if offset > 0 else "behind"
            parts.append(
                f"clock skew suspected: the remote clock is {abs(offset):.0f} s {direction} "
                f"ours (tolerated: {clock_skew:g} s)"
            )
    elif status == 429:
        parts.append("rate limited")
    return redact_text("; ".join(parts))


def find_request_id(headers: Mapping[str, str]) -> str:
    """The remote's request id, redacted, from the first of REQUEST_ID_HEADERS present.

    One pass over the response's few headers: looking each name up would cost a
    missed case-insensitive lookup per name on every call.
    """
    found: tuple[int, str] | None = None
    for name, value in headers.items():
        rank = _REQUEST_ID_RANK.get(name.lower())
        if rank is not None and value and (found is None or rank < found[0]):
            found = (rank, value)
    return "" if found is None else redact_text(found[1])[:200]


def row_values(
    integration: Integration,
    source: str,
    outcome: Outcome,
    *,
    ok: bool,
    is_test: bool = False,
    error: str = "",
    account_id: int | None = None,
) -> dict[str, Any]:
    """The column values (by attname) of the row for ``outcome``.

    Calls are logged from these, without a model instance: building one cost more than
    the rest of the row's Python work together.
    """
    response = outcome.response
    if not error:
        if outcome.error is not None:
            error = describe_error(outcome.error)
        elif response is not None and not ok:
            skew = (integration.auth_config or {}).get("clock_skew")
            error = describe_response(response, DEFAULT_CLOCK_SKEW if skew is None else skew)
    request_id = kid = jti = ""
    if response is not None:
        request_id = find_request_id(response.headers)
        token = getattr(response.request, "_integrations_token", None)
        if token is not None:
            kid, jti = token.kid[:200], token.jti[:100]
    return {
        "integration_id": integration.pk,
        "account_id": account_id,
        "source": source,
        "is_test": is_test,
        "method": outcome.method[:10],
        "url": redact_url(outcome.url)[:1000],
        "status_code": outcome.status_code,
        "ok": ok,
        "duration_ms": outcome.duration_ms,
        "attempts": outcome.attempts,
        "error": error,
        "request_id": request_id,
        "token_kid": kid,
        "token_jti": jti,
        "created_at": timezone.now(),
    }


def build_row(
    integration: Integration,
    source: str,
    outcome: Outcome,
    *,
    ok: bool | None = None,
    is_test: bool = False,
    error: str = "",
    account: Account | None = None,
) -> CallLog:
    """The unsaved row for ``outcome`` (made for ``account`` when given)."""
    if ok is None:
        ok = outcome.response is not None and outcome.response.ok
    values = row_values(integration, source, outcome, ok=ok, is_test=is_test, error=error)
    del values["integration_id"], values["account_id"]
    return CallLog(integration=integration, account=account, **values)
