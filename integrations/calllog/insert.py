"""Writing call-log rows: one INSERT built once per database, executed directly.

A failure to write is counted and swallowed: it never costs the caller its response.
Inside a transaction the row is written in a savepoint, so a failed insert does not
break the caller's transaction either. A row that cannot be written is never silently
missing: ``lost_rows`` counts it (also as the ``integrations.calllog.lost_rows``
metric) and logs the loss at once, then at most once per ``REPORT_EVERY`` seconds with
the number lost since, so a full disk or a database outage costs a log line per
interval, not one per call. A connection the database dropped (a restart, a failover,
``pg_terminate_backend``) is closed and the row tried once more on a new one, outside
a transaction, so the app reconnects by itself (security.md #25, #27).

When nothing instruments the connection (no ``DEBUG`` query log, no
``connection.execute_wrapper``), SQLite and PostgreSQL get the statement straight from
their driver, skipping Django's cursor wrappers; otherwise it goes through Django's
cursor, so APM tools and query counters see the same SQL.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from ..models import CallLog
from ..redaction import redact_text
from ..settings import app_settings
from ..telemetry import rows_lost

logger = logging.getLogger(__name__)


class LostRows:
    """Call-log rows the database refused on the caller's thread: ``count`` in all."""

    REPORT_EVERY = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the count and the last report (``services.reset``: a fresh process)."""
        with self._lock:
            self.count = 0
            self._unreported = 0
            self._reported_at: float | None = None

    def add(self, slug: str, error: BaseException) -> None:
        rows_lost(1, "lost")
        with self._lock:
            self.count += 1
            self._unreported += 1
            now = time.monotonic()
            if self._reported_at is not None and now - self._reported_at < self.REPORT_EVERY:
                return
            self._reported_at, unreported, total = now, self._unreported, self.count
            self._unreported = 0
        logger.error(
            "could not write the call log row for %s (%s: %s); %d row(s) lost since the "
            "last report, %d in all, next report in %.0f s at the earliest",
            slug,
            type(error).__name__,
            redact_text(str(error), limit=200),
            unreported,
            total,
            self.REPORT_EVERY,
        )


lost_rows = LostRows()


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
    except Exception as exc:  # whatever went wrong, the caller still gets its response
        error: BaseException = exc
    if not connection.in_atomic_block and not connection.is_usable():
        # The server dropped the connection: a new one, and the row once more on it.
        connection.close()
        try:
            return insert(values, connection, returning=returning)
        except Exception as exc:
            error = exc
            connection.close_if_unusable_or_obsolete()
    lost_rows.add(slug, error)
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
# The row's own transaction on PostgreSQL does not wait for its WAL record to reach the
# disk (docs/service.md, the call log). set_config(..., true) is SET LOCAL as an
# expression: in the INSERT's own FROM, the statement stays one statement, so it can be
# sent with server-side binding in one round trip.
_ASYNC_COMMIT = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
_insert_sql: dict[tuple[str, str], str] = {}


def _column(field: Any) -> str:
    return str(field.column)


def _quoted_columns(connection: Any) -> str:
    return ", ".join(connection.ops.quote_name(_column(field)) for field in _INSERT_FIELDS)


def _sql(connection: Any, *, values: str = "VALUES ({})") -> str:
    """The INSERT for one row, built once per database: ``Model.save()`` compiles the
    statement anew every time, which made it most of a logged call's overhead."""
    key = (connection.alias, values)
    if key not in _insert_sql:
        # Only the model's own table and column names go in, quoted; values are params.
        _insert_sql[key] = "INSERT INTO {} ({}) {}".format(  # noqa: S608
            connection.ops.quote_name(CallLog._meta.db_table),
            _quoted_columns(connection),
            values.format(", ".join(["%s"] * len(_INSERT_FIELDS))),
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


def _driver(connection: Any) -> str:
    """The DB-API module's name: "psycopg" (3) or "psycopg2" on PostgreSQL."""
    return str(connection.Database.__name__)


def _commits_alone(connection: Any) -> bool:
    """True when the INSERT is its own transaction: autocommit, outside ``atomic()``
    (inside one, the caller's commit decides, and is left alone)."""
    connection.ensure_connection()
    return bool(connection.get_autocommit()) and not connection.in_atomic_block


def _postgresql_statement(connection: Any, returning: bool) -> str:
    """The INSERT on PostgreSQL: RETURNING the pk if asked, and with an asynchronous
    commit when it is its own transaction (unless INTEGRATIONS_LOG_SYNCHRONOUS_COMMIT)."""
    asynchronous = not app_settings.LOG_SYNCHRONOUS_COMMIT and _commits_alone(connection)
    sql = _sql(connection, values="SELECT {}" + _ASYNC_COMMIT) if asynchronous else _sql(connection)
    if returning:
        return _returning(sql, connection.ops.quote_name(_column(CallLog._meta.pk)))
    return sql


@functools.cache
def _returning(sql: str, pk: str) -> str:
    return f"{sql} RETURNING {pk}"


# Per thread (as Django's connections are), per database alias: (driver connection, its
# cursor), reused while that connection lasts.
_cursors = threading.local()


def _driver_cursor(connection: Any) -> Any:
    """The driver's own cursor on ``connection``, made once per driver connection:
    making one costs about a fifth of a logged INSERT on PostgreSQL. On psycopg 3 it
    binds on the server (Django's cursors bind on the client, in Python: twice the CPU
    for this INSERT), and is prepared only as the site's ``OPTIONS["prepare_threshold"]``
    says (never, by Django's default: a pooler in transaction mode older than PgBouncer
    1.21 does not carry a prepared statement from one transaction to the next)."""
    raw = connection.connection
    kept = getattr(_cursors, connection.alias, None)
    if kept is None or kept[0] is not raw or kept[1].closed:
        psycopg3 = _driver(connection) == "psycopg"
        kept = (raw, connection.Database.Cursor(raw) if psycopg3 else raw.cursor())
        setattr(_cursors, connection.alias, kept)
    return kept[1]


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
    params = _params(values, connection)
    if vendor == "sqlite" and not returning and _uninstrumented(connection):
        # Django's cursor wrappers (and the %s-to-? rewrite of every statement) cost
        # SQLite half as much again as the insert itself; with nothing to report to,
        # the driver is called directly.
        connection.ensure_connection()
        with connection.wrap_database_errors:
            connection.connection.execute(_qmark(_sql(connection)), params)
        return None
    if vendor == "postgresql":
        sql = _postgresql_statement(connection, returning)
        if _uninstrumented(connection):
            # The same statement as below, on the driver's own cursor: Django's wrapper
            # (thread checks, wrappers, the query log) costs as much as the driver.
            with connection.wrap_database_errors:
                cursor = _driver_cursor(connection)
                cursor.execute(sql, params)
                return int(cursor.fetchone()[0]) if returning else None
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0]) if returning else None
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection), params)
        if not returning:
            return None
        pk_column = _column(CallLog._meta.pk)
        return int(connection.ops.last_insert_id(cursor, CallLog._meta.db_table, pk_column))


def insert_many(rows: list[dict[str, Any]], using: str) -> None:
    """Write rows (column values) in one statement per batch; their pks are not fetched.
    Run it inside a transaction: the batch is then one commit.

    PostgreSQL with psycopg 3 gets them by COPY (a tenth of the CPU of a multi-row
    INSERT per row); SQLite and the rest by one ``executemany`` of the INSERT.
    """
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in _FAST_VENDORS:
        CallLog.objects.using(using).bulk_create([CallLog(**values) for values in rows])
        return
    params = [_params(row, connection) for row in rows]
    connection.ensure_connection()
    if _uninstrumented(connection):
        with connection.wrap_database_errors:
            if vendor == "postgresql" and _driver(connection) == "psycopg":
                _copy(connection, params)
                return
            if vendor == "sqlite":
                connection.connection.executemany(_qmark(_sql(connection)), params)
                return
    with connection.cursor() as cursor:
        cursor.executemany(_sql(connection), params)


def _copy(connection: Any, params: list[list[Any]]) -> None:
    """COPY rows into the call log on psycopg 3 (which adapts each value itself)."""
    # Only the model's own table and column names go in, quoted; rows are data.
    table = connection.ops.quote_name(CallLog._meta.db_table)
    statement = f"COPY {table} ({_quoted_columns(connection)}) FROM STDIN"
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in params:
            copy.write_row(row)
