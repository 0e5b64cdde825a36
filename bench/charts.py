"""Admin charts at scale on PostgreSQL, 1,000,000 call-log rows over the last 30 days:
half of them one busy integration's, half spread over 99 others. Timed: the chart
queries and ``panel()`` for the busy integration and for a typical one, and
``sparklines()`` for a changelist page of all 100; with the covering index of
migration 0005 and with the plain one it replaced, and the plans PostgreSQL picks.

Runs in a child process on a dedicated database (``integrations_bench_charts``), dropped
afterwards; skipped with a message when PostgreSQL is unreachable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.postgres import measure_in_scratch_database

DATABASE = "integrations_bench_charts"
BUSY_ROWS = 500_000  # one integration, spread over the last 30 days
OTHERS, OTHER_ROWS = 99, 5_051  # the rest of a 100-row changelist page: 1,000,000 in all
REPEAT = 3
# Migration 0005 made calllog_integration_latest covering; the second run puts back the
# plain index it replaced, to show what the INCLUDE buys.
PLAIN = (
    "DROP INDEX calllog_integration_latest",
    "CREATE INDEX calllog_integration_latest ON integrations_calllog "
    "(integration_id, created_at DESC)",
)


def run() -> None:
    measure_in_scratch_database(DATABASE, "bench.charts")


def timed(work: Callable[[], Any]) -> float:
    """Median milliseconds over REPEAT warm runs."""
    work()
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def fill(cursor: Any) -> int:
    """The busy integration's rows (one every ~2.6 s over 30 days, 2% failing, latency
    5-304 ms with a tail), then OTHERS integrations with OTHER_ROWS each; returns the
    busy integration's id."""
    cursor.execute(
        """
        INSERT INTO integrations_integration
            (uid, slug, name, base_url, enabled, headers, timeout, log_calls, test_request,
             follow_redirects, ca_bundle, idempotency_header, auth_type, auth_config,
             encrypted_secrets, created_at, updated_at)
        SELECT gen_random_uuid(), 'api-' || n, 'API ' || n,
               'https://api' || n || '.example.com/', true, '{}', 10, 'all', '{}', false,
               '', '', 'jwt_bearer', '{"algorithm": "HS256"}', '', now(), now()
        FROM generate_series(0, %s) AS n
        """,
        [OTHERS],
    )
    cursor.execute("SELECT min(id) FROM integrations_integration")
    busy = int(cursor.fetchone()[0])
    insert = """
        INSERT INTO integrations_calllog
            (integration_id, source, is_test, method, url, status_code, ok, duration_ms,
             attempts, error, request_id, token_kid, token_jti, created_at)
        SELECT {integration}, 'api', false, 'GET', 'https://api.example.com/v1/items',
               CASE WHEN n %% 50 = 0 THEN 503 ELSE 200 END, n %% 50 <> 0,
               5 + (n::bigint * 7919) %% 300 + CASE WHEN n %% 97 = 0 THEN 2000 ELSE 0 END, 1,
               '', '', '', '', now() - (n * %s) * interval '1 second'
        FROM generate_series(1, %s) AS n
    """
    cursor.execute(insert.format(integration="%s"), [busy, 30 * 86400 / BUSY_ROWS, BUSY_ROWS])
    cursor.execute(
        insert.format(integration=f"{busy} + 1 + n %% {OTHERS}"),
        [30 * 86400 / (OTHERS * OTHER_ROWS), OTHERS * OTHER_ROWS],
    )
    cursor.execute("VACUUM ANALYZE integrations_calllog")  # as autovacuum would, for a log
    return busy


def plan(cursor: Any, busy: int, period: Any) -> str:
    """The access path of the 30-day percentile query: its scan nodes."""
    from integrations.charts import aggregates

    start = aggregates.window_start(period)
    where, params = aggregates._where("default", [busy], start, period)
    cursor.execute(
        f"EXPLAIN (ANALYZE, BUFFERS) SELECT {aggregates.BUCKET_SQL['postgresql']}, "  # noqa: S608
        "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms) "
        f"FROM integrations_calllog WHERE {where} GROUP BY 1",
        [int(start.timestamp()), period.width, *params],
    )
    lines = [row[0] for row in cursor.fetchall()]
    scans = [line.strip() for line in lines if "Scan" in line]
    total = [line for line in lines if line.startswith("Execution Time")]
    return "; ".join(scan.split("  (")[0] for scan in scans) + " | " + "".join(total)


def measure() -> None:
    """Child process: migrate, fill with generate_series, time the chart queries."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from integrations import charts
    from integrations.charts import aggregates
    from integrations.models import Integration

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        busy = fill(cursor)
    print(
        f"filled {BUSY_ROWS:,} rows for one integration and {OTHERS * OTHER_ROWS:,} for "
        f"{OTHERS} others in {time.perf_counter() - started:.1f} s"
    )
    integration = Integration.objects.get(pk=busy)
    typical = Integration.objects.get(pk=busy + 1)
    page = list(Integration.objects.order_by("pk").values_list("pk", flat=True)[:100])
    start_30d = aggregates.window_start(charts.DAYS)
    start_24h = aggregates.window_start(charts.HOURS)
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("busy 30 d, percentile_cont (1 query)", lambda: aggregates._percentile_cont(
            "default", [busy], start_30d, charts.DAYS)),
        ("busy 30 d, ranked window (1 query)", lambda: aggregates._ranked(
            "default", [busy], start_30d, charts.DAYS)),
        ("busy 24 h, percentile_cont (1 query)", lambda: aggregates._percentile_cont(
            "default", [busy], start_24h, charts.HOURS)),
        ("panel(): busy, 24 h + 30 d, SVG", lambda: charts.panel(integration)),
        ("panel(): typical, 24 h + 30 d, SVG", lambda: charts.panel(typical)),
        ("sparklines(): 100 ids (1 query)", lambda: charts.sparklines(page)),
    ]
    for label, statements in (
        ("(integration_id, created_at DESC) INCLUDE (duration_ms, ok): migration 0005", ()),
        ("(integration_id, created_at DESC), no INCLUDE: before 0005", PLAIN),
    ):
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            if statements:
                cursor.execute("VACUUM ANALYZE integrations_calllog")
            print(f"\n{label}")
            print(f"  plan 30 d: {plan(cursor, busy, charts.DAYS)}")
            print(f"  plan 24 h: {plan(cursor, busy, charts.HOURS)}")
            print(f"  plan 30 d, typical: {plan(cursor, busy + 1, charts.DAYS)}")
        print(f"  {'query':40} {'median ms':>10}")
        for name, work in cases:
            print(f"  {name:40} {timed(work):10.1f}")
