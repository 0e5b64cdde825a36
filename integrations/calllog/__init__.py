"""The call log: one redacted ``CallLog`` row per call (security.md #25-27).

``rows`` says what a row holds, ``insert`` writes rows fast, ``writer`` queues them for
one background thread, ``retention`` prunes old ones. The HTTP layer knows nothing of
this room: ``services`` passes ``log_call`` to each session as its ``on_call``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import CallLog, LogCalls
from ..redaction import MAX_ERROR_CHARS, redact_text, redact_url
from ..settings import app_settings
from .insert import LostRows, insert_many, lost_rows, save_row, write
from .retention import prune_call_logs
from .rows import build_row, describe_error, describe_response, find_request_id, row_values
from .writer import BackgroundWriter, writer

if TYPE_CHECKING:
    from ..http.outcome import Outcome
    from ..models import Account, Integration

__all__ = [
    "MAX_ERROR_CHARS",
    "BackgroundWriter",
    "LostRows",
    "build_row",
    "describe_error",
    "describe_response",
    "find_request_id",
    "insert_many",
    "log_call",
    "lost_rows",
    "prune_call_logs",
    "record",
    "redact_text",
    "redact_url",
    "row_values",
    "save_row",
    "writer",
]


def log_call(
    integration: Integration, source: str, outcome: Outcome, account: Account | None = None
) -> None:
    """Log an API call if the integration's ``log_calls`` asks for it: its row is
    written before this returns, or queued for the background writer. This is the
    ``on_call`` that ``services`` gives every ``IntegrationSession`` (bound to the
    session's account, if any)."""
    log_calls = integration.log_calls
    if log_calls == LogCalls.NONE:
        return
    response = outcome.response
    # Response.ok would raise and catch an HTTPError to say the same.
    ok = response is not None and response.status_code < 400
    if log_calls == LogCalls.ERRORS and ok:
        return
    account_id = account.pk if account is not None else None
    values = row_values(integration, source, outcome, ok=ok, account_id=account_id)
    if app_settings.LOG_WRITER == "background":
        writer.submit(integration.slug, values)  # a full queue drops it, counted and logged
        return
    write(integration.slug, values)


def record(
    integration: Integration,
    source: str,
    outcome: Outcome,
    *,
    ok: bool,
    error: str = "",
    account: Account | None = None,
) -> CallLog:
    """Write a test call's row (test calls are always logged, never in the background)
    and return it, without a pk if the write failed."""
    row = build_row(
        integration, source, outcome, ok=ok, is_test=True, error=error, account=account
    )
    save_row(row)
    return row
