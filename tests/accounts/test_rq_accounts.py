"""Four RQ workers over the same accounts (security.md #23, #31): each account's test
call enqueued four times back to back, so the workers take one cold account at once
and race for its token; rq's forking Worker runs each job in a fresh child, so only the
shared Redis cache (database 9, this test's own queue and key prefix) can keep them to
one token request per account cluster-wide, counted at the emulator."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts.emulators import GitHubEmulator
from tests.commands.helpers import ROOT, manage
from tests.keys import public_pem, rsa_pem
from tests.workers import redis_namespace, rq_env, run_rq_workers

REDIS_URL = "redis://127.0.0.1:6379/9"
WORKERS = 4
ACCOUNTS = 6
COPIES = 4
DEADLINE = 120

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ENQUEUE = """
from integrations.models import Account, Integration
from integrations.tasks import enqueue_tests
app = Integration.objects.get(slug="gh-rq")
accounts = list(Account.objects.filter(integration=app).order_by("pk"))
enqueue_tests([(app, account) for account in accounts for _ in range({copies})])
"""


@pytest.fixture
def redis_queue() -> Iterator[str]:
    """A queue name (also the cache's key prefix) no other run uses; its Redis keys
    are deleted afterwards."""
    with redis_namespace(REDIS_URL, "accounts-rq") as name:
        yield name


def test_four_rq_workers_request_one_token_per_account(tmp_path: Path, redis_queue: str) -> None:
    env = rq_env(tmp_path / "db.sqlite3", REDIS_URL, redis_queue, WORKER_KEY=rsa_pem())
    installations = {n: f"acct-{n}" for n in range(1, ACCOUNTS + 1)}
    with GitHubEmulator(
        installations, token_delay=0.3, public_key=public_pem(rsa_pem())
    ) as github:
        subprocess.run(
            [sys.executable, "-m", "tests.accounts.process_worker", "setup", "gh-rq",
             github.base_url, str(ACCOUNTS)],
            env=env, cwd=ROOT, check=True, timeout=120,
        )
        ran = manage("shell", "-c", ENQUEUE.format(copies=COPIES), env=env)
        assert ran.code == 0, ran.err[-2000:]
        run_rq_workers(env, redis_queue, WORKERS, tmp_path, DEADLINE)
        requests = dict(github.token_requests)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT a.key, l.source, l.ok FROM integrations_calllog l "
            "JOIN integrations_account a ON a.id = l.account_id"
        ).fetchall()
    assert sorted(rows) == sorted(
        (f"acct-{n}", "task", 1) for n in installations for _ in range(COPIES)
    ), rows
    assert requests == {str(n): 1 for n in installations}, requests
