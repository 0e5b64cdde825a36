"""Admin charts at scale on PostgreSQL, 1,000,000 call-log rows over 30 days: half of
them one busy integration's (one every ~2.6 s), half spread over 99 others. Timed:
``panel()`` for the busy integration and a typical one, and ``sparklines()`` for a
changelist page of all 100, each on a first hit (empty cache: the whole window
aggregated, as every hit was before the cache), warm (settled buckets from the cache,
only the current hour and day read), and an hour on (past midnight: the hour and the
day just ended read and cached); with their query counts and the plans of the busy
integration's 30-day query.

The rows end at 23:54 today, the chart's `now`: today's bucket then holds a whole day's
rows and the current hour 54 minutes' (the warm path's worst case).

Runs in a child process on a dedicated database (``integrations_bench_charts``), dropped
afterwards; skipped with a message when PostgreSQL is unreachable. About 40 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bench.postgres import measure_in_scratch_database

DATABASE = "integrations_bench_charts"
BUSY_ROWS = 500_000  # one integration, spread over the 30 days
OTHERS, OTHER_ROWS = 99, 5_051  # the rest of a 100-row changelist page: 1,000,000 in all
REPEAT = 3


def run() -> None:
    measure_in_scratch_database(DATABASE, "bench.charts")


def fill(cursor: Any, end: datetime) -> int:
    """The busy integration's rows (2% failing, latency 5-304 ms with a tail), then
    OTHERS integrations with OTHER_ROWS each, all before ``end``; returns the busy
    integration's id."""
    from integrations.models import Integration

    # Through the ORM, so columns added by later migrations get their defaults.
    made = Integration.objects.bulk_create(
        Integration(slug=f"api-{n}", name=f"API {n}", base_url=f"https://api{n}.example.com/",
                    auth_type="jwt_bearer", auth_config={"algorithm": "HS256"})
        for n in range(OTHERS + 1)
    )
    busy = min(integration.pk for integration in made)
    insert = """
        INSERT INTO integrations_calllog
            (integration_id, source, is_test, method, url, status_code, ok, duration_ms,
             attempts, error, request_id, token_kid, token_jti, created_at)
        SELECT {integration}, 'api', false, 'GET', 'https://api.example.com/v1/items',
               CASE WHEN n %% 50 = 0 THEN 503 ELSE 200 END, n %% 50 <> 0,
               5 + (n::bigint * 7919) %% 300 + CASE WHEN n %% 97 = 0 THEN 2000 ELSE 0 END, 1,
               '', '', '', '', %s::timestamptz - (n * %s) * interval '1 second'
        FROM generate_series(1, %s) AS n
    """
    cursor.execute(insert.format(integration="%s"),
                   [busy, end, 30 * 86400 / BUSY_ROWS, BUSY_ROWS])
    cursor.execute(
        insert.format(integration=f"{busy} + 1 + n %% {OTHERS}"),
        [end, 30 * 86400 / (OTHERS * OTHER_ROWS), OTHERS * OTHER_ROWS],
    )
    cursor.execute("VACUUM ANALYZE integrations_calllog")  # as autovacuum would, for a log
    return busy


def plan(cursor: Any, first: dict[int, int], bounds: list[datetime]) -> str:
    """The 30-day query's scan nodes, rows read and execution time."""
    from integrations.charts import aggregates

    sql, params = aggregates.percentile_sql("default", first, bounds)
    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
    lines = [row[0] for row in cursor.fetchall()]
    scans = [  # "Index Only Scan using ... on ...: rows=16597 loops=30" (rows per loop)
        line.strip().split("  (")[0].lstrip("-> ") + ": "
        + line.split("actual ")[1].split(" ", 1)[1].rstrip(")")
        for line in lines if "Index" in line and "Scan" in line
    ]
    total = "".join(line for line in lines if line.startswith("Execution Time"))
    return f"{'; '.join(scans)} | {total}"


def timed(draw: Callable[[datetime], Any], at: datetime, before: Callable[[], Any]
          ) -> tuple[float, int]:
    """Median milliseconds of ``draw(at)`` over REPEAT runs, each after ``before``, and
    the queries one run makes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    samples, queries = [], 0
    for _ in range(REPEAT):
        before()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            draw(at)
            samples.append((time.perf_counter() - started) * 1000)
        queries = len(captured)
    return statistics.median(samples), queries


def restore(cache: Any, entries: dict[str, Any]) -> None:
    """The cache as it was: exactly ``entries``."""
    cache.clear()
    cache.set_many(entries)


def measure() -> None:
    """Child process: migrate, fill with generate_series, time the charts."""
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from integrations import charts
    from integrations.charts import cache as charts_cache
    from integrations.charts import periods
    from integrations.models import Integration

    call_command("migrate", verbosity=0)
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    now = today + timedelta(hours=23, minutes=54)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        busy = fill(cursor, now)
    print(
        f"filled {BUSY_ROWS:,} rows for one integration and {OTHERS * OTHER_ROWS:,} for "
        f"{OTHERS} others in {time.perf_counter() - started:.1f} s"
    )
    integration = Integration.objects.get(pk=busy)
    typical = Integration.objects.get(pk=busy + 1)
    page = list(Integration.objects.order_by("pk").values_list("pk", flat=True)[:100])
    cases: list[tuple[str, Callable[[datetime], Any]]] = [
        ("panel(): busy, 24 h + 30 d", lambda at: charts.panel(integration, now=at)),
        ("panel(): typical, 24 h + 30 d", lambda at: charts.panel(typical, now=at)),
        ("sparklines(): 100 ids", lambda at: charts.sparklines(page, now=at)),
    ]
    hour_on = now + timedelta(hours=1)  # past midnight: one more hour and day to cache
    keys = [charts_cache.key(pk, period) for pk in page for period in (charts.HOURS, charts.DAYS)]
    columns = ("first hit", "warm", "an hour on")
    print(f"\n  {'ms (queries)':30}" + "".join(f"{column:>12}" for column in columns))
    for name, draw in cases:
        first = timed(draw, now, cache.clear)
        warm = timed(draw, now, partial(draw, now))
        warmed = cache.get_many(keys)
        later = timed(draw, hour_on, partial(restore, cache, warmed))
        print(f"  {name:30}" + "".join(f"{ms:8.1f} ({q})" for ms, q in (first, warm, later)))
    bounds = periods.edges(charts.DAYS, now)
    with connection.cursor() as cursor:
        print(f"\n  plan 30 d, first hit: {plan(cursor, {busy: 0}, bounds)}")
        print(f"  plan 30 d, warm: {plan(cursor, {busy: 29}, bounds)}")
