"""The account admin at 100,000 accounts on PostgreSQL (issue 11): the account
changelist (plain, filtered, searched, a deep page) and the integration page, timed
through Django's test client (routing, queries, rendering) with their query counts.
The query counts do not depend on the number of accounts (tests/accounts/test_admin.py
pins them at two sizes); this shows the time at 100,000.

Runs in a child process on a throwaway database (``integrations_bench_accounts``),
dropped afterwards; skipped with a message when PostgreSQL is unreachable.
"""

from __future__ import annotations

import time

from bench.postgres import measure_in_scratch_database

DATABASE = "integrations_bench_accounts"
ACCOUNTS = 100_000
FAILED_EVERY = 50


def run() -> None:
    print(f"\nadmin at {ACCOUNTS:,} accounts (PostgreSQL):", flush=True)
    measure_in_scratch_database(DATABASE, "bench.accounts_admin")


def measure() -> None:
    """Child process: one GitHub App, ACCOUNTS accounts (every 100th disabled) and a
    test call each (every FAILED_EVERY-th failed), filled with generate_series; then
    the pages."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment

    from bench.admin import print_pages
    from tests.accounts.helpers import github_app

    setup_test_environment()
    call_command("migrate", verbosity=0)
    app = github_app("bench-app")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO integrations_account
                (integration_id, key, name, enabled, options, created_at, updated_at)
            SELECT %s, 'acct-' || n, 'Account ' || n, n %% 100 <> 0,
                   jsonb_build_object('installation_id', n::text), now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [app.pk, ACCOUNTS],
        )
        cursor.execute(
            """
            INSERT INTO integrations_calllog
                (integration_id, account_id, source, is_test, method, url, status_code, ok,
                 duration_ms, attempts, error, request_id, token_kid, token_jti, created_at)
            SELECT a.integration_id, a.id, 'task', true, 'GET',
                   'https://api.github.com/installation/repositories',
                   CASE WHEN a.id %% %s = 0 THEN 401 ELSE 200 END, a.id %% %s <> 0, 80, 1,
                   CASE WHEN a.id %% %s = 0 THEN 'unexpected status 401' ELSE '' END,
                   '', '', '', now() - (a.id || ' seconds')::interval
            FROM integrations_account a
            """,
            [FAILED_EVERY] * 3,
        )
        cursor.execute("ANALYZE")
    print(
        f"filled {ACCOUNTS:,} accounts and {ACCOUNTS:,} test calls in "
        f"{time.perf_counter() - started:.1f} s"
    )
    accounts = "/admin/integrations/account/"
    cases = [
        ("account list", accounts, {}),
        ("account list, one integration", accounts, {"integration": app.slug}),
        ("account list, last test failed", accounts, {"last_test": "failed"}),
        ("account list, enabled = no", accounts, {"enabled__exact": "0"}),
        ("account list, search acct-99999", accounts, {"q": "acct-99999"}),
        ("account list, page 1,000", accounts, {"p": "1000"}),
        ("integration page (count + first 20)",
         f"/admin/integrations/integration/{app.pk}/change/", {}),
        ("call log, one account", "/admin/integrations/calllog/", {"account": "acct-50000"}),
    ]
    print_pages(cases)
