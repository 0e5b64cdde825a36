"""Accounts at scale (issue 11): one GitHub App acting for N accounts.

- ``integrations_test --all --parallel 32`` over every account against the GitHub
  emulator (tests/accounts/emulators.py), which runs in a process of its own
  (bench/emulator.py): the client measured here does not share its interpreter lock
  with the server. The command spreads its calls over worker processes as it does by
  default (one per CPU once there are 1,000 test calls for each: 32 threads in one
  process share one interpreter lock, so they cannot use more than one CPU). The API
  answers after 100 ms. Two variants, because the ideal depends on what the token
  endpoint costs: token requests answered at once (the ideal counts one 100 ms round
  trip per account: N x 0.1 s / 32), and answered after 100 ms as well (two round
  trips in a row per account: N x 0.2 s / 32). Token requests are counted at the
  emulator, per installation: the target is exactly one per account. CPU time per
  account is printed for the client (with its workers) and the emulator: it says how
  much of the machine the ideal pace needs, which the wall time alone hides.
- The token cache's memory with N cached tokens (tracemalloc, this process's dict of
  tokens, locks and version index; the shared cache is Redis in production, so it is
  left out here), and its bound: INTEGRATIONS_TOKEN_CACHE_SIZE, least recently used
  evicted first.
- 4 RQ workers over the same accounts (bench/accounts_rq.py) and the account admin
  at 100,000 accounts on PostgreSQL (bench/accounts_admin.py).

``make bench`` (``python -m bench accounts``) runs the test runs and the token cache at
the issue's 10,000 accounts (about 2 minutes; ``BENCH_ACCOUNTS`` changes that) and the
RQ workers at 1,000 (``BENCH_RQ_ACCOUNTS``: 4 workers over 10,000 accounts take a
quarter of an hour); ``python -m bench.accounts --accounts N [--parts
runs,memory,rq,admin]`` runs chosen parts at another size.

Profiled with py-spy (requirements-dev.txt): ``py-spy record --nonblocking -f raw``
around ``integrations_test``. What it showed, and what was changed: a new connection
pool (and TCP connection) per account's test call and token request, now one pool per
integration (integrations/http/transport.py); an RS256 app JWT signed per account,
now once per app for half its lifetime (tokens/presets/github.py); a scan of every
cached key on each new token, now an index by account (tokens/cache.py). What is left
is mostly requests' own cost per HTTP call (two per account) and building each
account's provider.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
import tracemalloc
from typing import Any

DELAY = 0.1
PARALLEL = 32
SLUG = "bench-accounts"
PARTS = ("runs", "memory", "rq", "admin")


def run() -> None:
    main(["--accounts", os.environ.get("BENCH_ACCOUNTS", "10000"), "--parts", "runs,memory"])
    main(["--accounts", os.environ.get("BENCH_RQ_ACCOUNTS", "1000"), "--parts", "rq,admin"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accounts")
    parser.add_argument(
        "--accounts", type=int, default=int(os.environ.get("BENCH_ACCOUNTS", "1000"))
    )
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    options = parser.parse_args(argv)
    parts = [part.strip() for part in options.parts.split(",") if part.strip()]
    count = options.accounts
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start "
        "(shared with other work: wall times vary with it, CPU per account much less)"
    )
    if "runs" in parts:
        for token_delay in (0.0, DELAY):
            bench_test_run(count, token_delay)
    if "memory" in parts:
        bench_memory(count)
    if "rq" in parts:
        from bench import accounts_rq

        accounts_rq.bench(count)
    if "admin" in parts:
        from bench import accounts_admin

        accounts_admin.run()


def create_app(base_url: str, count: int) -> Any:
    """A fresh github_app integration with ``count`` accounts (the only enabled one)."""
    from integrations.models import Integration
    from tests.accounts.helpers import add_accounts, github_app

    Integration.objects.filter(slug=SLUG).delete()
    app = github_app(SLUG, base_url=base_url)
    Integration.objects.exclude(pk=app.pk).update(enabled=False)
    for start in range(1, count + 1, 5000):
        add_accounts(app, min(5000, count + 1 - start), start=start)
    return app


def forget_tokens() -> None:
    """A cold start: no session, connection, token or app JWT kept from before."""
    from django.core.cache import cache

    from integrations import services

    services.reset()
    cache.clear()


def bench_test_run(count: int, token_delay: float) -> None:
    from django.core.management import call_command

    from bench.emulator import GitHubProcess
    from integrations.models import CallLog
    from integrations.testcalls import default_processes
    from tests.keys import public_pem, rsa_pem

    call_command("migrate", verbosity=0)
    public_key = public_pem(rsa_pem())
    with GitHubProcess(count, public_key, delay=DELAY, token_delay=token_delay) as github:
        app = create_app(github.base_url, count)
        forget_tokens()
        server_cpu = github.cpu()
        cpu = client_cpu()
        started = time.perf_counter()
        call_command(
            "integrations_test", "--all", "--parallel", str(PARALLEL),
            stdout=io.StringIO(), stderr=io.StringIO(), verbosity=0,
        )
        elapsed = time.perf_counter() - started
        cpu = client_cpu() - cpu
        server_cpu = github.cpu() - server_cpu
        requests = github.token_requests()
    passed = CallLog.objects.filter(integration=app, is_test=True, ok=True).count()
    app.delete()
    round_trips = 1 if not token_delay else 2
    ideal = count * (DELAY + token_delay) / PARALLEL
    once = sum(1 for n in requests.values() if n == 1)
    print(
        f"\n{count:,} accounts, --parallel {PARALLEL}: API {DELAY * 1000:.0f} ms, token "
        f"endpoint {token_delay * 1000:.0f} ms -> ideal counts {round_trips} round "
        f"trip(s) per account: {count:,} x {DELAY + token_delay:.1f} s / {PARALLEL} = "
        f"{ideal:.2f} s"
    )
    processes = default_processes(count, PARALLEL)
    print(
        f"  integrations_test --all: {elapsed:.2f} s = {elapsed / ideal:.2f}x ideal, on "
        f"{processes} worker process(es) (the default for this run on this machine); CPU "
        f"per account: client {cpu * 1000 / count:.2f} ms (this process and its "
        f"workers), emulator "
        f"{server_cpu * 1000 / count:.2f} ms (its own process); both need "
        f"{(cpu + server_cpu) / ideal:.1f} of the {os.cpu_count()} CPUs at the ideal pace"
    )
    print(f"  passed test calls logged: {passed:,} of {count:,}")
    print(
        f"  token requests at the emulator: {sum(requests.values()):,} for "
        f"{len(requests):,} accounts; exactly one: {once:,}; most for one account: "
        f"{max(requests.values(), default=0)}"
    )


def client_cpu() -> float:
    """CPU seconds of this process and of its children waited for (the test run's
    worker processes; the emulator is still running, so not counted)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def bench_memory(count: int) -> None:
    """Tracemalloc over ``count`` tokens put in a fresh TokenCache (keys and values as
    an account's real ones are), the shared cache switched off: what this process
    keeps. Then the bound: past INTEGRATIONS_TOKEN_CACHE_SIZE the oldest go."""
    from django.test import override_settings

    from integrations.settings import app_settings
    from integrations.tokens.cache import TokenCache
    from integrations.tokens.endpoint import EndpointToken

    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    size = int(app_settings.TOKEN_CACHE_SIZE)
    expires = time.time() + 3600
    with override_settings(CACHES=dummy):
        tokens = TokenCache()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for n in range(count):
            # As AccountScope and the GitHub preset make them: slug[account]:fingerprint.
            key = f"integrations:token:{SLUG}[acct-{n}]:{n:016x}"
            value = f"ghs_{n:036d}"
            tokens.get(key, lambda v=value: EndpointToken(v, expires, token_type="bearer"))  # type: ignore[misc]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        kept = len(tokens._local)
        used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        bounded = TokenCache()
        for n in range(size + size // 10):
            key = f"integrations:token:{SLUG}[acct-{n}]:{n:016x}"
            bounded.get(key, lambda: EndpointToken("ghs_x", expires))
        newest = f"integrations:token:{SLUG}[acct-{size + size // 10 - 1}]:"
        newest_kept = any(key.startswith(newest) for key in bounded._local)
    print(
        f"\ntoken cache, {count:,} tokens (this process; shared cache off): "
        f"{used / 1024 / 1024:.1f} MiB, {used / max(1, kept):.0f} bytes per token "
        f"({kept:,} kept)"
    )
    print(
        f"  bound INTEGRATIONS_TOKEN_CACHE_SIZE = {size:,} (default): "
        f"{size + size // 10:,} accounts' tokens -> {len(bounded._local):,} kept, "
        f"least recently used evicted (newest kept: {newest_kept}); "
        f"at this size about {size * used / max(1, kept) / 1024 / 1024:.0f} MiB at most"
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    main(sys.argv[1:])
