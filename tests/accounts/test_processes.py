"""Across processes (security.md #23, #31): N real processes, each calling M accounts
of one GitHub App at once on a cold cache, share each account's token through Redis
(database 9, a key prefix of the test's own): exactly M token requests in all, one per
account, and every process sends each account the same token, its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts.emulators import GitHubEmulator
from tests.commands.helpers import ROOT
from tests.keys import public_pem, rsa_pem
from tests.workers import redis_namespace, run_together

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/9"
PROCESSES = 4
ACCOUNTS = 5


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A cache key prefix no other run uses, or a skip saying why; its keys are deleted
    afterwards (never the database's others)."""
    with redis_namespace(REDIS_URL, "accounts-proc") as prefix:
        yield prefix


def test_processes_times_accounts_make_one_token_request_per_account(
    redis_prefix: str, tmp_path: Path
) -> None:
    installations = {n: f"acct-{n}" for n in range(1, ACCOUNTS + 1)}
    slug = "gh-procs"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.accounts.redis_settings",
        "CACHE_URL": REDIS_URL,
        "TEST_CACHE_PREFIX": redis_prefix,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WORKER_KEY": rsa_pem(),
    }
    command = [sys.executable, "-m", "tests.accounts.process_worker"]
    # A slow token endpoint: every process is waiting on each account's lock meanwhile.
    with GitHubEmulator(
        installations, token_delay=0.5, public_key=public_pem(rsa_pem())
    ) as github:
        subprocess.run(
            [*command, "setup", slug, github.base_url, str(ACCOUNTS)],
            env=env, cwd=ROOT, check=True, timeout=120,
        )
        results = run_together([*command, "call", slug, str(ACCOUNTS)], PROCESSES, env, 90)
        requests = dict(github.token_requests)
        owners = dict(github.tokens)
    assert requests == {str(n): 1 for n in installations}, requests
    for n, login in installations.items():
        key = f"acct-{n}"
        answers = [result[key] for result in results]
        assert all(status == 200 and names == [f"{login}/app"] for status, names, _ in answers)
        tokens = {token for _, _, token in answers}
        assert len(tokens) == 1 and owners[tokens.pop()] == str(n)
