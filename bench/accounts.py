"""Accounts at scale (issue 11): one GitHub App, N accounts, a loopback emulator whose
API answers after 100 ms (token requests answer at once).

- ``integrations_test --all --parallel 32`` over every account versus the ideal
  N x 0.1 s / 32, and the token requests the emulator counted (target: one per account);
- the token cache's memory with N cached tokens (tracemalloc; the local dict, its locks
  and Django's local-memory shared cache together).

``python -m bench accounts`` (N = 1,000; BENCH_ACCOUNTS=10000 for the full size).
"""

from __future__ import annotations

import io
import os
import time
import tracemalloc

from django.core.cache import cache
from django.core.management import call_command

DELAY = 0.1
PARALLEL = 32


def run() -> None:
    from integrations import services
    from integrations.models import Account, CallLog, Integration
    from integrations.tokens.base import Token
    from integrations.tokens.cache import TokenCache
    from tests.accounts.emulators import GitHubEmulator
    from tests.accounts.helpers import add_accounts, github_app

    count = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
    call_command("migrate", verbosity=0)
    Integration.objects.filter(slug="bench-gh").delete()
    installations = {n: f"acct-{n}" for n in range(1, count + 1)}
    with GitHubEmulator(installations, delay=DELAY, token_delay=0.0) as github:
        app = github_app("bench-gh", base_url=github.base_url)
        Integration.objects.exclude(pk=app.pk).update(enabled=False)
        add_accounts(app, count)
        services.reset()
        cache.clear()
        started = time.perf_counter()
        err = io.StringIO()
        call_command(
            "integrations_test", "--all", "--parallel", str(PARALLEL), stdout=io.StringIO(),
            stderr=err, verbosity=0,
        )
        elapsed = time.perf_counter() - started
        ideal = count * DELAY / PARALLEL
        rows = CallLog.objects.filter(integration=app, is_test=True, ok=True).count()
        tokens = sum(github.token_requests.values())
        most = max(github.token_requests.values(), default=0)
    print(f"accounts: {count}, parallel: {PARALLEL}, API delay: {DELAY * 1000:.0f} ms")
    print(f"integrations_test --all: {elapsed:.2f} s; ideal {ideal:.2f} s; {elapsed / ideal:.2f}x")
    print(f"passed test calls logged: {rows} of {count}")
    print(f"token requests: {tokens} ({most} at most for one account)")

    tokens_cache = TokenCache()
    cache.clear()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    expires = time.time() + 3600
    for n in range(count):
        key = f"integrations:token:bench-gh[acct-{n}]:0123456789abcdef"
        value = f"ghs_{n:036d}"
        tokens_cache.get(key, lambda v=value: Token(v, expires))  # type: ignore[misc]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(
        f"token cache with {count} tokens: {size / 1024 / 1024:.1f} MiB "
        f"({size / count:.0f} bytes per token, shared local-memory cache included)"
    )
    Account.objects.filter(integration=app).delete()
    app.delete()
