"""The call log: one redacted ``CallLog`` row per call (SECURITY 25-26).

Rows hold method, host and path without query values, status, latency, attempts, the
error's class and a redacted message, the remote request id and the token's kid/jti;
never a header value, token, assertion or key. Auth failures are explained where the
response allows: the ``WWW-Authenticate`` error, and "clock skew suspected" when the
remote's ``Date`` is further from ours than the integration tolerates.

A failure to write the log is logged and swallowed: it never costs the caller its
response. Inside a transaction the row is written in a savepoint, so a failed insert
does not break the caller's transaction either.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import threading
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from django.db import connections, router, transaction

from .conf import app_settings
from .http.redaction import MAX_ERROR_CHARS, redact_text, redact_url
from .models import CallLog, LogCalls

if TYPE_CHECKING:
    from .http.session import Outcome
    from .models import Integration

__all__ = [
    "MAX_ERROR_CHARS",
    "build_row",
    "describe_error",
    "describe_response",
    "record_call",
    "redact_text",
    "redact_url",
]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "X-Github-Request-Id",
    "X-Amzn-Requestid",
    "Request-Id",
    "X-Correlation-Id",
    "Cf-Ray",
)
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
    """The unsaved row for ``outcome``."""
    response = outcome.response
    if ok is None:
        ok = response is not None and response.ok
    if not error:
        if outcome.error is not None:
            error = describe_error(outcome.error)
        elif response is not None and not ok:
            skew = (integration.auth_config or {}).get("clock_skew")
            error = describe_response(response, DEFAULT_CLOCK_SKEW if skew is None else skew)
    request_id = kid = jti = ""
    if response is not None:
        headers = response.headers
        for name in REQUEST_ID_HEADERS:
            value = headers.get(name)
            if value:
                request_id = redact_text(value)[:200]
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
    """Write the call's row if the integration's ``log_calls`` asks for it.

    Returns the row (without a pk if the write failed, or while it waits for the
    background writer) or None when the call is not to be logged. Test calls are always
    written before this returns.
    """
    if ok is None:
        ok = outcome.response is not None and outcome.response.ok
    if not should_log(integration, ok, is_test):
        return None
    row = build_row(integration, source, outcome, ok=ok, is_test=is_test, error=error)
    if not is_test and app_settings.LOG_WRITER == "background" and writer.submit(row):
        return row
    save_row(row)
    return row


def save_row(row: CallLog) -> None:
    """Insert ``row`` now; on failure log it and leave ``row.pk`` None."""
    try:
        using = router.db_for_write(CallLog, instance=row)
        if connections[using].in_atomic_block:
            with transaction.atomic(using=using):
                insert(row, using)
        else:
            insert(row, using)
    except Exception:  # whatever went wrong, the caller still gets its response
        row.pk = None
        logger.exception("could not write the call log row for %s", row.integration.slug)


_INSERT_FIELDS = [field for field in CallLog._meta.local_concrete_fields if not field.primary_key]
# Fields whose Python value the database takes as is (strings, integers, booleans, the
# foreign key's id); the rest go through the field's own conversion.
_PLAIN_TYPES = {"CharField", "TextField", "BooleanField", "PositiveIntegerField",
                "PositiveSmallIntegerField", "ForeignKey"}
_PLAIN = [field.get_internal_type() in _PLAIN_TYPES for field in _INSERT_FIELDS]
_FAST_VENDORS = {"sqlite", "postgresql", "mysql"}
_insert_sql: dict[tuple[str, str], str] = {}


def _column(field: Any) -> str:
    return str(field.column)


def _sql(connection: Any, using: str) -> str:
    """The INSERT for one row, built once per database: ``Model.save()`` compiles the
    statement anew every time, which made it most of a logged call's overhead."""
    key = (using, connection.vendor)
    if key not in _insert_sql:
        quote = connection.ops.quote_name
        # Only the model's own table and column names go in, quoted; values are params.
        _insert_sql[key] = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            quote(CallLog._meta.db_table),
            ", ".join(quote(_column(field)) for field in _INSERT_FIELDS),
            ", ".join(["%s"] * len(_INSERT_FIELDS)),
        )
    return _insert_sql[key]


def _params(row: CallLog, connection: Any) -> list[Any]:
    return [
        getattr(row, field.attname)
        if plain
        else field.get_db_prep_save(field.pre_save(row, True), connection)
        for field, plain in zip(_INSERT_FIELDS, _PLAIN, strict=True)
    ]


def insert(row: CallLog, using: str) -> None:
    """INSERT one row and set its pk.

    Nothing listens to CallLog's save signals, so none are sent. Databases other than
    SQLite, PostgreSQL and MySQL go through ``save()``.
    """
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in _FAST_VENDORS:
        row.save(using=using, force_insert=True)
        return
    sql = _sql(connection, using)
    pk_column = _column(CallLog._meta.pk)
    with connection.cursor() as cursor:
        if vendor == "postgresql":  # no lastrowid there
            returning = f" RETURNING {connection.ops.quote_name(pk_column)}"
            cursor.execute(sql + returning, _params(row, connection))
            row.pk = cursor.fetchone()[0]
        else:
            cursor.execute(sql, _params(row, connection))
            row.pk = connection.ops.last_insert_id(cursor, CallLog._meta.db_table, pk_column)
    row._state.adding = False
    row._state.db = using


def insert_many(rows: list[CallLog], using: str) -> None:
    """INSERT rows in one statement execution per batch; their pks are not fetched."""
    connection = connections[using]
    if connection.vendor not in _FAST_VENDORS:
        CallLog.objects.using(using).bulk_create(rows)
        return
    with connection.cursor() as cursor:
        cursor.executemany(_sql(connection, using), [_params(row, connection) for row in rows])


class BackgroundWriter:
    """Writes queued rows in batches from one thread (``INTEGRATIONS_LOG_WRITER =
    "background"``): a call pays for a queue put, and the database for one transaction
    per batch instead of one per row.

    The queue is bounded: when it is full (the database cannot keep up) the caller writes
    its own row, which slows calls down instead of losing rows. Queued rows are written
    at interpreter exit; a killed process loses them.
    """

    MAX_QUEUED = 10_000
    MAX_BATCH = 500
    # After the first row of a batch, wait this long for more: a batch per row would
    # cost a thread switch and a commit per call, which is what this writer saves.
    LINGER = 0.01

    def __init__(self) -> None:
        self._reset()
        # A forked child has none of the parent's threads: start afresh there (rows
        # still queued in the parent are the parent's to write).
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.Queue[CallLog | threading.Event] = queue.Queue(self.MAX_QUEUED)
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, row: CallLog) -> bool:
        """Queue ``row``; False when the queue is full and the caller must write it."""
        if self._thread is None:
            self._started()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row queued so far is written; False on timeout. The writer
        then closes its database connection (a test database can then be dropped)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _started(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="integrations-call-log-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush, 5.0)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            if not isinstance(items[0], threading.Event):
                time.sleep(self.LINGER)
            while len(items) < self.MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [item for item in items if isinstance(item, CallLog)]
            if rows:
                self._write(rows)
            flushes = [item for item in items if isinstance(item, threading.Event)]
            if flushes:
                connections.close_all()
            for event in flushes:
                event.set()

    def _write(self, rows: list[CallLog]) -> None:
        using = router.db_for_write(CallLog)
        try:
            with transaction.atomic(using=using):
                insert_many(rows, using)
        except Exception:
            # One bad row (say, of an integration deleted meanwhile) must not cost the
            # others theirs: write them one by one, each failure logged on its own.
            connections[using].close_if_unusable_or_obsolete()
            for row in rows:
                row.pk = None
                save_row(row)


writer = BackgroundWriter()
