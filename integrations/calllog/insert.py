"""Writing call-log rows: one INSERT built once per database, executed directly.

A failure to write is logged and swallowed: it never costs the caller its response.
Inside a transaction the row is written in a savepoint, so a failed insert does not
break the caller's transaction either.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from ..models import CallLog

logger = logging.getLogger(__name__)


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
