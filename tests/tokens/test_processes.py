"""Across processes: N real processes calling the service layer on a cold integration
share one token through Redis (database 2), so the token endpoint is hit once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.keys import public_pem, rsa_pem
from tests.tokens.emulators import AuthServer

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/2"
PROCESSES = 5
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_db():
    """Redis database 2, or a skip saying why; removes this test's keys afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable ({type(exc).__name__}); CI has it")
    yield client
    client.close()


def test_processes_on_a_cold_integration_request_one_token(server, redis_db, tmp_path):
    """SECURITY 23: 5 processes started together on a cold integration, each calling
    services.request, cause exactly one token request cluster-wide (cache.add lock in
    Redis, re-checked after taking it); all send the same access token."""
    auth = AuthServer(
        server, verify_key=public_pem(rsa_pem()), algorithm="RS256", rules=[], delay=0.5
    )
    slug = f"proc-{uuid.uuid4().hex[:12]}"
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
    workers = [
        subprocess.Popen(
            [*command, "call", slug],
            env=env,
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for key in redis_db.scan_iter(match=f"*integrations:*{slug}*"):
            redis_db.delete(key)
    assert [r["status"] for r in results] == [200] * PROCESSES
    assert auth.mints == 1
    assert {r["token"] for r in results} == {auth.issued[0]}
