"""Admin changelists at scale: the call log at 1,000,000 rows on PostgreSQL, and the
integration list at 1,000 integrations, timed through Django's test client (URL routing,
queries, template rendering), with their query counts.

Runs in a child process on a dedicated database (``integrations_bench_admin``), dropped
afterwards; skipped with a message when PostgreSQL is unreachable.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.postgres import measure_in_scratch_database

DATABASE = "integrations_bench_admin"
CALL_LOGS = 1_000_000
INTEGRATIONS = 1_000
REPEAT = 5


def run() -> None:
    measure_in_scratch_database(DATABASE, "bench.admin")


def timed(client: Any, url: str, params: dict[str, str]) -> tuple[float, int]:
    """Median milliseconds over REPEAT warm requests, and the queries one request makes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params)  # warm: URL resolver, templates, PostgreSQL buffers
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(url, params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(url, params)
    return statistics.median(samples), len(queries)


def print_pages(cases: list[tuple[str, str, dict[str, str]]]) -> None:
    """Each (label, url, params) admin page's median time and query count, as a new
    superuser sees it."""
    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.create_superuser("bench", password="bench")
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    print(f"{'page':42} {'median ms':>10} {'queries':>8}")
    for label, url, params in cases:
        ms, queries = timed(client, url, params)
        print(f"{label:42} {ms:10.1f} {queries:8d}", flush=True)


def measure() -> None:
    """Child process: migrate, fill with generate_series, time the changelists."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows CaptureQueriesContext and the test client's context
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO integrations_integration
                (uid, slug, name, base_url, enabled, headers, timeout, log_calls, test_request,
                 follow_redirects, ca_bundle, idempotency_header, auth_type, auth_config,
                 encrypted_secrets, server_metadata, created_at, updated_at)
            SELECT gen_random_uuid(), 'api-' || n, 'API ' || n,
                   'https://api' || n || '.example.com/', true, '{}', 10, 'all', '{}', false,
                   '', '', 'jwt_bearer',
                   '{"algorithm": "HS256"}', '', '{}', now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [INTEGRATIONS],
        )
        cursor.execute(
            """
            INSERT INTO integrations_calllog
                (integration_id, source, is_test, method, url, status_code, ok, duration_ms,
                 attempts, error, request_id, token_kid, token_jti, created_at)
            SELECT i.id, (ARRAY['api', 'admin', 'command', 'task'])[1 + n %% 4], n %% 10 = 0,
                   'GET', 'https://api' || i.id || '.example.com/v1/items/' || n,
                   CASE WHEN n %% 50 = 0 THEN 503 ELSE 200 END, n %% 50 <> 0, 5 + n %% 300, 1,
                   CASE WHEN n %% 50 = 0 THEN 'unexpected status 503' ELSE '' END, '', '', '',
                   now() - (n || ' seconds')::interval
            FROM generate_series(1, %s) AS n
            JOIN integrations_integration i
              ON i.id = (SELECT min(id) FROM integrations_integration) + n %% %s
            """,
            [CALL_LOGS, INTEGRATIONS],
        )
        cursor.execute("ANALYZE")
    print(
        f"filled {CALL_LOGS:,} call logs over {INTEGRATIONS:,} integrations "
        f"in {time.perf_counter() - started:.1f} s"
    )

    some = connection.cursor()
    some.execute("SELECT min(id) FROM integrations_integration")
    first_id = str(some.fetchone()[0])
    cases = [
        ("call log, newest first", "/admin/integrations/calllog/", {}),
        ("call log, one integration", "/admin/integrations/calllog/", {"integration": "api-1"}),
        ("call log, failures", "/admin/integrations/calllog/", {"ok__exact": "0"}),
        ("call log, page 100", "/admin/integrations/calllog/", {"p": "100"}),
        ("call log, search error", "/admin/integrations/calllog/", {"q": "status 503"}),
        ("integration list (1,000, last test)", "/admin/integrations/integration/", {}),
        (
            "integration page (latest calls)",
            f"/admin/integrations/integration/{first_id}/change/",
            {},
        ),
    ]
    print_pages(cases)
