"""The charts' numbers: call-log rows aggregated into the buckets of a period
(``periods``).

``series(ids, period)`` is at most ONE query for any number of integrations and
buckets. Buckets that can no longer change come from the cache (``cache``); the query
reads only the rest: for each integration, from its first bucket not cached to the
window's end (usually the current hour or day alone).

On PostgreSQL each wanted bucket is its own index range, aggregated with
``percentile_cont`` in a LATERAL subquery; elsewhere (SQLite) a window query ranks each
bucket's durations and returns only the up to four ranks each percentile is
interpolated from, so both give percentile_cont's result and neither moves a bucket's
rows to Python. Both take the bucket edges as parameters (local days are not all 24
hours long), so both put a row in the same bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.utils import timezone

from ..models import CallLog
from . import cache
from .periods import Bucket, Period, edges

PERCENTILES = (50, 95)  # integer percent: the window query's ranks are integer arithmetic

# (integration id, bucket number, calls, failures, p50, p95)
Row = tuple[int, int, int, int, float, float]
# What one query reads: for each integration, the number of its first bucket to read;
# it reads from there to the window's end.
FirstBucket = Mapping[int, int]
# The window's bucket edges (periods.edges): bucket n is [edges[n], edges[n + 1]).
Edges = Sequence[datetime]


def series(
    ids: Iterable[int], period: Period, *, now: datetime | None = None
) -> dict[int, list[Bucket]]:
    """Each integration's ``period.count`` buckets, oldest first: ONE query (none
    without ids), the settled buckets read from and written to the cache."""
    now = now or timezone.now()
    bounds = edges(period, now)
    starts = bounds[:-1]
    wanted = list(dict.fromkeys(ids))
    cached = cache.load(wanted, period, starts)
    # The newest bucket holds `now` and is never settled, so every id has a first miss.
    first = {pk: next(n for n in range(period.count) if n not in cached[pk]) for pk in wanted}
    live: dict[int, dict[int, Bucket]] = {pk: {} for pk in wanted}
    if wanted:
        for pk, n, calls, failures, p50, p95 in aggregate(first, bounds):
            if pk in live and first[pk] <= n < period.count:
                live[pk][n] = Bucket(starts[n], calls, int(failures), p50, p95)
    found = {
        pk: [
            cached[pk][n] if n < first[pk] else live[pk].get(n, Bucket(starts[n]))
            for n in range(period.count)
        ]
        for pk in wanted
    }
    cache.store(found, bounds, period, now, first)
    return found


def aggregate(first: FirstBucket, bounds: Edges) -> list[Row]:
    """ONE query: a row per (integration, bucket) with calls, from each integration's
    ``first`` bucket on."""
    alias = router.db_for_read(CallLog)
    query = _percentile_cont if connections[alias].vendor == "postgresql" else _ranked
    return query(alias, first, bounds)


def _percentile_cont(alias: str, first: FirstBucket, bounds: Edges) -> list[Row]:
    """PostgreSQL: ``percentile_sql``."""
    sql, params = percentile_sql(alias, first, bounds)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (pk, n, calls, failures, float(values[0]), float(values[1]))
            for pk, n, calls, failures, values in cursor.fetchall()
        ]


def percentile_sql(alias: str, first: FirstBucket, bounds: Edges) -> tuple[str, list[Any]]:
    """Per wanted (integration, bucket), a LATERAL aggregate over that bucket's index
    range (an index-only scan on the covering index, migration 0005). Grouping the
    whole window instead sorted all its rows first: 500,000 rows for a busy
    integration's 30 days, spilled to disk, about four times slower."""
    connection = connections[alias]
    table = connection.ops.quote_name(CallLog._meta.db_table)
    count = len(bounds) - 1
    wanted = [(pk, n) for pk, since in first.items() for n in range(since, count)]
    fractions = ", ".join(str(p / 100) for p in PERCENTILES)
    sql = f"""
        SELECT want.pk, want.n, bucket.calls, bucket.failures, bucket.percentiles
        FROM unnest(%s::integer[], %s::integer[], %s::timestamptz[], %s::timestamptz[])
             AS want(pk, n, low, high)
        CROSS JOIN LATERAL (
            SELECT COUNT(*) AS calls, COUNT(*) FILTER (WHERE NOT ok) AS failures,
                   percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY duration_ms)
                       AS percentiles
            FROM {table}
            WHERE integration_id = want.pk AND created_at >= want.low
              AND created_at < want.high
        ) AS bucket
        WHERE bucket.calls > 0
    """  # noqa: S608 - only the table name and constants are formatted in
    params = [
        [pk for pk, _ in wanted], [n for _, n in wanted],
        [bounds[n] for _, n in wanted], [bounds[n + 1] for _, n in wanted],
    ]
    return sql, params


def source_sql(alias: str, first: FirstBucket, bounds: Edges) -> tuple[str, list[Any]]:
    """The rows to aggregate, (integration_id, bucket, duration_ms, ok): one UNION ALL
    branch per first bucket, each an index range on (integration_id, created_at), then
    numbered by the edges they fall between."""
    connection = connections[alias]
    adapt = connection.ops.adapt_datetimefield_value
    table = connection.ops.quote_name(CallLog._meta.db_table)
    by_first: dict[int, list[int]] = {}
    for pk, n in first.items():
        by_first.setdefault(n, []).append(pk)
    branches, params = [], []
    for n, ids in sorted(by_first.items()):
        marks = ", ".join(["%s"] * len(ids))
        branches.append(
            f"SELECT integration_id, created_at, duration_ms, ok FROM {table} "  # noqa: S608
            f"WHERE integration_id IN ({marks}) AND created_at >= %s AND created_at < %s"
        )
        params += [*ids, adapt(bounds[n]), adapt(bounds[-1])]
    # Rows are inside the window, so the last bucket needs no test of its own.
    inner = range(1, len(bounds) - 1)
    numbered = " ".join(f"WHEN created_at < %s THEN {n - 1}" for n in inner)
    last = len(bounds) - 2
    union = " UNION ALL ".join(branches)
    sql = f"""
        SELECT integration_id, CASE {numbered} ELSE {last} END AS bucket, duration_ms, ok
        FROM ({union}) AS logged
    """  # noqa: S608 - only the table name and constants are formatted in
    return sql, [*(adapt(bounds[n]) for n in inner), *params]


def ranked_sql(source: str) -> str:
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
            FROM ({source}) AS calls
        ) AS ranked
        WHERE rn = 0 OR {keep}
    """  # noqa: S608 - only the table name and constants are formatted in


def _ranked(alias: str, first: FirstBucket, bounds: Edges) -> list[Row]:
    """Any database with window functions (SQLite; PostgreSQL in tests, to prove both
    paths agree)."""
    source, params = source_sql(alias, first, bounds)
    with connections[alias].cursor() as cursor:
        cursor.execute(ranked_sql(source), params)
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
