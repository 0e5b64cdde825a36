"""The charts' numbers: call-log rows aggregated into fixed-width buckets.

Aggregated in the database, at constant query count: ``series(ids, period)`` is ONE
query for any number of integrations and buckets. On PostgreSQL it groups with
``percentile_cont``; elsewhere (SQLite) a window query ranks each bucket's durations
and returns only the up to four ranks each percentile is interpolated from, so both
give percentile_cont's result and neither moves a bucket's rows to Python.

Buckets are fixed-width in seconds from an aligned start: hours on the hour, days from
midnight in the current time zone (a DST change inside the 30 days shifts later days'
edges by that hour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router
from django.utils import timezone

from ..models import CallLog

PERCENTILES = (50, 95)  # integer percent: the window query's ranks are integer arithmetic


@dataclass(frozen=True)
class Period:
    key: str  # for element ids
    label: str
    width: int  # seconds per bucket
    count: int
    tick_every: int  # an axis label every this many buckets
    tick_format: str  # strftime of a bucket's start, local time


HOURS = Period("24h", "last 24 hours", 3600, 24, 6, "%H:%M")
DAYS = Period("30d", "last 30 days", 86400, 30, 7, "%b %d")


@dataclass(frozen=True)
class Bucket:
    start: datetime
    calls: int = 0
    failures: int = 0
    p50: float | None = None  # milliseconds; None without calls
    p95: float | None = None


def window_start(period: Period, now: datetime | None = None) -> datetime:
    """Start of the window whose last bucket holds ``now``."""
    now = timezone.localtime(now or timezone.now())
    if period.width == 86400:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    else:
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(seconds=period.width * period.count)


def series(
    ids: Sequence[int], period: Period, *, now: datetime | None = None
) -> dict[int, list[Bucket]]:
    """Each integration's ``period.count`` buckets, oldest first: ONE query."""
    start = window_start(period, now)
    starts = [start + timedelta(seconds=period.width * n) for n in range(period.count)]
    found: dict[int, dict[int, Bucket]] = {pk: {} for pk in ids}
    if ids:
        alias = router.db_for_read(CallLog)
        vendor = connections[alias].vendor
        query = _percentile_cont if vendor == "postgresql" else _ranked
        for pk, n, calls, failures, p50, p95 in query(alias, list(ids), start, period):
            if pk in found and 0 <= n < period.count:
                found[pk][n] = Bucket(starts[n], calls, int(failures), p50, p95)
    return {
        pk: [by_n.get(n, Bucket(starts[n])) for n in range(period.count)]
        for pk, by_n in found.items()
    }


# (integration id, bucket number, calls, failures, p50, p95)
Row = tuple[int, int, int, int, float, float]

# Whole seconds are enough: the window starts on a whole second and buckets are whole
# seconds wide, so dropping a fraction never moves a row across a bucket's edge.
# date_part, not EXTRACT: since PostgreSQL 14 EXTRACT returns numeric, and numeric
# arithmetic on every row made the 30-day query twice as slow.
BUCKET_SQL = {
    "postgresql": "FLOOR((date_part('epoch', created_at) - %s) / %s)::integer",
    "sqlite": "(CAST(strftime('%%s', created_at) AS INTEGER) - %s) / %s",
}


def _where(alias: str, ids: list[int], start: datetime, period: Period) -> tuple[str, list[Any]]:
    connection = connections[alias]
    end = start + timedelta(seconds=period.width * period.count)
    adapt = connection.ops.adapt_datetimefield_value
    marks = ", ".join(["%s"] * len(ids))
    where = f"integration_id IN ({marks}) AND created_at >= %s AND created_at < %s"
    return where, [*ids, adapt(start), adapt(end)]


def _table(alias: str) -> str:
    return connections[alias].ops.quote_name(CallLog._meta.db_table)


def _percentile_cont(alias: str, ids: list[int], start: datetime, period: Period) -> list[Row]:
    """PostgreSQL: one GROUP BY with percentile_cont over both percentiles (one sort
    per bucket)."""
    where, params = _where(alias, ids, start, period)
    fractions = ", ".join(str(p / 100) for p in PERCENTILES)
    sql = f"""
        SELECT integration_id,
               {BUCKET_SQL["postgresql"]} AS bucket,
               COUNT(*), COUNT(*) FILTER (WHERE NOT ok),
               percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY duration_ms)
        FROM {_table(alias)}
        WHERE {where}
        GROUP BY 1, 2
    """  # noqa: S608 - only the table name and constants are formatted in
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [int(start.timestamp()), period.width, *params])
        return [
            (pk, n, calls, failures, float(values[0]), float(values[1]))
            for pk, n, calls, failures, values in cursor.fetchall()
        ]


def ranked_sql(bucket: str, table: str, where: str) -> str:
    """Rank each bucket's durations; keep rank 0 (for the counts) and, per percentile,
    ranks floor(p(n-1)) and the next, which percentile_cont interpolates between."""
    keep = " OR ".join(
        f"rn = ((n - 1) * {p}) / 100 OR rn = ((n - 1) * {p}) / 100 + 1" for p in PERCENTILES
    )
    return f"""
        SELECT integration_id, bucket, n, failures, rn, duration_ms FROM (
            SELECT integration_id, bucket, duration_ms,
                   ROW_NUMBER() OVER (PARTITION BY integration_id, bucket
                                      ORDER BY duration_ms) - 1 AS rn,
                   COUNT(*) OVER (PARTITION BY integration_id, bucket) AS n,
                   SUM(CASE WHEN ok THEN 0 ELSE 1 END)
                       OVER (PARTITION BY integration_id, bucket) AS failures
            FROM (SELECT integration_id, {bucket} AS bucket, duration_ms, ok
                  FROM {table} WHERE {where}) AS calls
        ) AS ranked
        WHERE rn = 0 OR {keep}
    """  # noqa: S608 - only the table name and constants are formatted in


def _ranked(alias: str, ids: list[int], start: datetime, period: Period) -> list[Row]:
    """Any database with window functions (SQLite; PostgreSQL in tests, to prove both
    paths agree)."""
    vendor = connections[alias].vendor
    where, params = _where(alias, ids, start, period)
    sql = ranked_sql(BUCKET_SQL.get(vendor, BUCKET_SQL["sqlite"]), _table(alias), where)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [int(start.timestamp()), period.width, *params])
        fetched = cursor.fetchall()
    ranks: dict[tuple[int, int], dict[int, int]] = {}
    counts: dict[tuple[int, int], tuple[int, int]] = {}
    for pk, n, calls, failures, rn, duration in fetched:
        ranks.setdefault((pk, n), {})[rn] = duration
        counts[(pk, n)] = (calls, int(failures))
    low, high = PERCENTILES
    return [
        (pk, n, calls, failures,
         interpolate(ranks[pk, n], calls, low), interpolate(ranks[pk, n], calls, high))
        for (pk, n), (calls, failures) in counts.items()
    ]


def interpolate(ranked: dict[int, int], n: int, percent: int) -> float:
    """percentile_cont: linear between the two ranks around ``percent``·(n-1)."""
    low, remainder = divmod((n - 1) * percent, 100)
    if not remainder:
        return float(ranked[low])
    return ranked[low] + (ranked[low + 1] - ranked[low]) * remainder / 100
