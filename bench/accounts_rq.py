"""4 RQ workers over the same GitHub App accounts: one token request per account,
cluster-wide (issue 11), counted at the emulator.

Each account's test call is enqueued twice, one after the other, so two workers
usually take the same cold account at the same moment and race for its token; the
token endpoint answers after TOKEN_DELAY to widen that window. The workers share tokens
through Redis (127.0.0.1:6379, database 9, a cache prefix and queue of this run's own,
deleted afterwards): the single-flight lock (``cache.add``, re-checked once taken) must
leave one token request per account however the jobs fall. The API answers at once:
this part counts token requests, the thread runs (bench/accounts.py) measure time.
Skipped with a message when Redis is unreachable.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/9"
WORKERS = 4
COPIES = 2
TOKEN_DELAY = 0.02
WORKER_CLASS = "rq.worker.SimpleWorker"
ROOT = Path(__file__).resolve().parents[1]

ENQUEUE = """
from integrations.models import Account, Integration
from integrations.tasks import enqueue_tests
app = Integration.objects.get(slug={slug!r})
accounts = list(Account.objects.filter(integration=app).order_by("pk"))
enqueue_tests([(app, account) for account in accounts for _ in range({copies})])
"""


def bench(count: int) -> None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:
        print(f"\nRQ part skipped: Redis unreachable at {REDIS_URL} ({type(exc).__name__})")
        return

    from django.conf import settings
    from django.core.management import call_command

    from bench.accounts import SLUG, create_app
    from bench.emulator import GitHubProcess
    from bench.scale import workers
    from integrations.models import CallLog
    from tests.keys import public_pem, rsa_pem
    from tests.workers import delete_redis_keys, rq_env

    call_command("migrate", verbosity=0)
    queue = f"bench-accounts-{uuid.uuid4().hex[:10]}"
    env = rq_env(settings.DATABASES["default"]["NAME"], REDIS_URL, queue)
    jobs = count * COPIES
    try:
        with GitHubProcess(
            count, public_pem(rsa_pem()), delay=0.0, token_delay=TOKEN_DELAY
        ) as github:
            app = create_app(github.base_url, count)
            logs = CallLog.objects.filter(integration=app, source="task")
            with workers(env, queue, client, WORKER_CLASS):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(ROOT / "manage.py"), "shell", "-c",
                     ENQUEUE.format(slug=SLUG, copies=COPIES)],
                    cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
                )
                deadline = time.monotonic() + 600
                while logs.count() < jobs and time.monotonic() < deadline:
                    time.sleep(0.2)
                elapsed = time.perf_counter() - started
            requests = github.token_requests()
            done, failed = logs.count(), logs.filter(ok=False).count()
            raced = overlapping_pairs(logs)
            app.delete()
    finally:
        delete_redis_keys(client, queue)
        client.close()
    once = sum(1 for n in requests.values() if n == 1)
    print(
        f"\nRQ: {WORKERS} x {WORKER_CLASS.rsplit('.', 1)[1]}, {count:,} accounts, each "
        f"enqueued {COPIES}x back to back ({jobs:,} jobs; token endpoint "
        f"{TOKEN_DELAY * 1000:.0f} ms, API at once)"
    )
    print(
        f"  {done:,}/{jobs:,} done, {failed} failed, in {elapsed:.1f} s (enqueueing "
        f"included); accounts whose {COPIES} calls were in flight at once: {raced:,}"
    )
    print(
        f"  token requests at the emulator, cluster-wide: {sum(requests.values()):,} for "
        f"{len(requests):,} accounts; exactly one: {once:,}; most for one account: "
        f"{max(requests.values(), default=0)}"
    )


def overlapping_pairs(logs: Any) -> int:
    """Accounts whose logged calls overlapped in time (each row: from ``created_at`` -
    ``duration_ms`` to ``created_at``): the workers raced for those accounts' tokens."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for account, created, duration in logs.values_list("account_id", "created_at", "duration_ms"):
        end = created.timestamp()
        spans.setdefault(account, []).append((end - duration / 1000, end))
    raced = 0
    for calls in spans.values():
        calls.sort()
        if any(later[0] < earlier[1] for earlier, later in zip(calls, calls[1:], strict=False)):
            raced += 1
    return raced
