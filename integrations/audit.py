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
import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from django.db import connections, router, transaction
from django.utils import timezone

from .models import CallLog, LogCalls
from .redaction import MAX_ERROR_CHARS, redact_text, redact_url
from .settings import app_settings

if TYPE_CHECKING:
    from .http.session import Outcome
    from .models import Integration

__all__ = [
    "MAX_ERROR_CHARS",
    "build_row",
    "describe_error",
    "describe_response",
    "log_call",
    "record_test",
    "redact_text",
    "redact_url",
]

logger = logging.getLogger(__name__)

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
) -> CallLog:
    """The unsaved row for ``outcome``."""
    if ok is None:
        ok = outcome.response is not None and outcome.response.ok
    values = row_values(integration, source, outcome, ok=ok, is_test=is_test, error=error)
    del values["integration_id"]
    return CallLog(integration=integration, **values)


def log_call(integration: Integration, source: str, outcome: Outcome) -> None:
    """Log an API call if the integration's ``log_calls`` asks for it: its row is
    written before this returns, or queued for the background writer."""
    log_calls = integration.log_calls
    if log_calls == LogCalls.NONE:
        return
    response = outcome.response
    # Response.ok would raise and catch an HTTPError to say the same.
    ok = response is not None and response.status_code < 400
    if log_calls == LogCalls.ERRORS and ok:
        return
    values = row_values(integration, source, outcome, ok=ok)
    if app_settings.LOG_WRITER == "background" and writer.submit(integration.slug, values):
        return
    write(integration.slug, values)


def record_test(
    integration: Integration, source: str, outcome: Outcome, *, ok: bool, error: str = ""
) -> CallLog:
    """Write a test call's row (test calls are always logged, never in the background)
    and return it, without a pk if the write failed."""
    row = build_row(integration, source, outcome, ok=ok, is_test=True, error=error)
    save_row(row)
    return row


def save_row(row: CallLog) -> None:
    """Insert ``row`` now; on failure log it and leave ``row.pk`` None."""
    values = {field.attname: getattr(row, field.attname) for field in _INSERT_FIELDS}
    if values["created_at"] is None:
        values["created_at"] = row.created_at = timezone.now()
    using = router.db_for_write(CallLog, instance=row)
    row.pk = write(row.integration.slug, values, using, returning=True)
    if row.pk is not None:
        row._state.adding = False
        row._state.db = using


def write(
    slug: str, values: dict[str, Any], using: str | None = None, *, returning: bool = False
) -> int | None:
    """Insert one row; on failure log it and return None. Inside a transaction the
    insert runs in a savepoint, so a failure does not break the caller's transaction."""
    connection = connections[using or router.db_for_write(CallLog)]
    try:
        if connection.in_atomic_block:
            with transaction.atomic(using=connection.alias):
                return insert(values, connection, returning=returning)
        return insert(values, connection, returning=returning)
    except Exception:  # whatever went wrong, the caller still gets its response
        logger.exception("could not write the call log row for %s", slug)
        return None


_INSERT_FIELDS = [field for field in CallLog._meta.local_concrete_fields if not field.primary_key]
_ATTNAMES = [str(field.attname) for field in _INSERT_FIELDS]
# Fields whose Python value the database takes as is (strings, integers, booleans, the
# foreign key's id); the rest go through the field's own conversion.
_PLAIN_TYPES = {"CharField", "TextField", "BooleanField", "PositiveIntegerField",
                "PositiveSmallIntegerField", "ForeignKey"}
_CONVERTED = [
    (index, field)
    for index, field in enumerate(_INSERT_FIELDS)
    if field.get_internal_type() not in _PLAIN_TYPES
]
_FAST_VENDORS = {"sqlite", "postgresql", "mysql"}
_insert_sql: dict[tuple[str, str], str] = {}


def _column(field: Any) -> str:
    return str(field.column)


def _sql(connection: Any) -> str:
    """The INSERT for one row, built once per database: ``Model.save()`` compiles the
    statement anew every time, which made it most of a logged call's overhead."""
    key = (connection.alias, connection.vendor)
    if key not in _insert_sql:
        quote = connection.ops.quote_name
        # Only the model's own table and column names go in, quoted; values are params.
        _insert_sql[key] = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            quote(CallLog._meta.db_table),
            ", ".join(quote(_column(field)) for field in _INSERT_FIELDS),
            ", ".join(["%s"] * len(_INSERT_FIELDS)),
        )
    return _insert_sql[key]


def _params(values: dict[str, Any], connection: Any) -> list[Any]:
    params = [values[name] for name in _ATTNAMES]
    for index, field in _CONVERTED:
        # prepared: the values are already the right Python types (row_values made them).
        params[index] = field.get_db_prep_value(params[index], connection, prepared=True)
    return params


def _uninstrumented(connection: Any) -> bool:
    """True when no query log (DEBUG) or execute wrapper (APM, tests counting queries)
    would see what goes through the connection's cursors."""
    return not (connection.queries_logged or connection.execute_wrappers)


@functools.cache
def _qmark(sql: str) -> str:
    """``sql`` in SQLite's own parameter style (values never go in: they are params)."""
    return sql.replace("%s", "?")


def insert(values: dict[str, Any], connection: Any, *, returning: bool = False) -> int | None:
    """INSERT one row from its column values on ``connection``; its pk when
    ``returning``.

    Nothing listens to CallLog's save signals, so none are sent. Databases other than
    SQLite, PostgreSQL and MySQL go through ``save()``.
    """
    vendor = connection.vendor
    if vendor not in _FAST_VENDORS:
        row = CallLog(**values)
        row.save(using=connection.alias, force_insert=True)
        return int(row.pk)
    sql = _sql(connection)
    if not returning and vendor == "sqlite" and _uninstrumented(connection):
        # Django's cursor wrappers (and the %s-to-? rewrite of every statement) cost
        # SQLite half as much again as the insert itself; with nothing to report to,
        # the driver is called directly.
        connection.ensure_connection()
        with connection.wrap_database_errors:
            connection.connection.execute(_qmark(sql), _params(values, connection))
        return None
    with connection.cursor() as cursor:
        if not returning:
            cursor.execute(sql, _params(values, connection))
            return None
        if vendor == "postgresql":  # no lastrowid there
            quoted_pk = connection.ops.quote_name(_column(CallLog._meta.pk))
            cursor.execute(f"{sql} RETURNING {quoted_pk}", _params(values, connection))
            return int(cursor.fetchone()[0])
        cursor.execute(sql, _params(values, connection))
        pk_column = _column(CallLog._meta.pk)
        return int(connection.ops.last_insert_id(cursor, CallLog._meta.db_table, pk_column))


def insert_many(rows: list[dict[str, Any]], using: str) -> None:
    """INSERT rows (column values) in one statement execution per batch; their pks are
    not fetched."""
    connection = connections[using]
    if connection.vendor not in _FAST_VENDORS:
        CallLog.objects.using(using).bulk_create([CallLog(**values) for values in rows])
        return
    with connection.cursor() as cursor:
        cursor.executemany(_sql(connection), [_params(row, connection) for row in rows])


# A queued row: the integration's slug (for the error message if it cannot be written)
# and the row's column values.
Queued = tuple[str, dict[str, Any]]


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
        self._queue: queue.Queue[Queued | threading.Event] = queue.Queue(self.MAX_QUEUED)
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, slug: str, values: dict[str, Any]) -> bool:
        """Queue a row (its column values); False when the queue is full and the caller
        must write it."""
        if self._thread is None:
            self._started()
        try:
            self._queue.put_nowait((slug, values))
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
            rows = [item for item in items if isinstance(item, tuple)]
            if rows:
                self._write(rows)
            flushes = [item for item in items if isinstance(item, threading.Event)]
            if flushes:
                connections.close_all()
            for event in flushes:
                event.set()

    def _write(self, rows: list[Queued]) -> None:
        using = router.db_for_write(CallLog)
        try:
            with transaction.atomic(using=using):
                insert_many([values for _, values in rows], using)
        except Exception:
            # One bad row (say, of an integration deleted meanwhile) must not cost the
            # others theirs: write them one by one, each failure logged on its own.
            connections[using].close_if_unusable_or_obsolete()
            for slug, values in rows:
                write(slug, values, using)


writer = BackgroundWriter()
