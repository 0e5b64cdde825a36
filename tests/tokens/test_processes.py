"""Across processes: N real processes calling the service layer on a cold integration
share one token through Redis (database 2), so the token endpoint is hit once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.commands.helpers import ROOT
from tests.keys import rsa_pem
from tests.tokens.emulators import AuthServer
from tests.workers import redis_namespace, run_together

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/2"
PROCESSES = 5


@pytest.fixture
def slug() -> Iterator[str]:
    """The integration's slug, which names its cache keys: a name no other run uses,
    on Redis database 2 or a skip saying why; its keys are deleted afterwards."""
    with redis_namespace(REDIS_URL, "proc") as name:
        yield name


def test_processes_on_a_cold_integration_request_one_token(server, slug, tmp_path):
    """security.md #23: 5 processes started together on a cold integration, each calling
    services.request, cause exactly one token request cluster-wide (cache.add lock in
    Redis, re-checked after taking it); all send the same access token."""
    auth = AuthServer(
        server, algorithm="RS256", rules=[], delay=0.5
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CACHE_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WORKER_KEY": rsa_pem(),
    }
    command = [sys.executable, "-m", "tests.tokens.redis_worker"]
    subprocess.run(
        [*command, "setup", slug, auth.url, f"{server.url}/api/"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    results = run_together([*command, "call", slug], PROCESSES, env, 60)
    assert [r["status"] for r in results] == [200] * PROCESSES
    assert auth.mints == 1
    assert {r["token"] for r in results} == {auth.issued[0]}
