"""Background test calls on a real engine: RQ workers (separate processes) over Redis.

Everything runs as an operator would: ``migrate``, ``integrations_import``,
``integrations_test --all --enqueue`` and four ``rqworker`` processes, all against one
SQLite file and Redis database 6, on a queue and cache prefix of this test's own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.commands.helpers import Ran, manage
from tests.keys import HMAC_SECRET
from tests.loopback import LoopbackServer, Reply
from tests.workers import redis_namespace, rq_env, run_rq_workers

REDIS_URL = "redis://127.0.0.1:6379/6"
WORKERS = 4
DEADLINE = 120  # seconds for the whole run, workers included

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def redis_queue() -> Iterator[str]:
    """A queue name no other run uses; its Redis keys are deleted afterwards."""
    with redis_namespace(REDIS_URL, "h5-test") as name:
        yield name


@pytest.fixture
def env(tmp_path: Path, redis_queue: str) -> dict[str, str]:
    return rq_env(tmp_path / "db.sqlite3", REDIS_URL, redis_queue, H5_SHARED_SECRET=HMAC_SECRET)


def manage_ok(env: dict[str, str], *args: str) -> Ran:
    ran = manage(*args, env=env)
    assert ran.code == 0, f"manage.py {' '.join(args)}: {ran.err[-2000:]}"
    assert "Traceback" not in ran.err
    return ran


class TokenServer:
    """A token endpoint that counts its hits and an API that holds the first four test
    calls of ``shared`` until all four are in flight (only four workers at once can)."""

    def __init__(self, server: LoopbackServer) -> None:
        self.token_requests = 0
        self.lock = threading.Lock()
        self.gate = threading.Barrier(WORKERS, timeout=60)
        self.gated = 0
        server.route("POST", "/oauth/token", self.token)
        server.route("GET", "/shared/health", self.shared)
        server.route("GET", "/plain/health", lambda r: Reply(200, {}))

    def token(self, request):
        with self.lock:
            self.token_requests += 1
            n = self.token_requests
        time.sleep(0.3)  # a slow endpoint widens the window in which workers could race
        answer = {"access_token": f"access-{n}", "token_type": "Bearer", "expires_in": 3600}
        return Reply(200, answer)

    def shared(self, request):
        with self.lock:
            self.gated += 1
            wait = self.gated <= WORKERS
        if wait:
            try:
                self.gate.wait()
            except threading.BrokenBarrierError:
                return Reply(500, {"error": "four workers never overlapped"})
        return Reply(200, {}) if request.bearer == "access-1" else Reply(401, {})


def test_four_rq_workers_run_enqueued_tests_with_one_token_request(
    server, tmp_path, env, redis_queue
):
    """Issue 6, security.md #23: `integrations_test --all --enqueue` puts one task per
    integration on RQ; four real worker processes run them (and 7 more of one
    integration, four at a time), every result lands in CallLog with source "task", and
    the workers share one token through the Redis cache: one token request in all."""
    api = TokenServer(server)
    config = {"integrations": [
        {"slug": "shared", "name": "Shared", "base_url": f"{server.url}/shared/",
         "test_request": {"method": "GET", "path": "health"},
         "auth": {"type": "jwt_grant", "algorithm": "HS256",
                  "key": {"env": "H5_SHARED_SECRET"}, "claims": {"iss": "shop"},
                  "token_url": f"{server.url}/oauth/token"}},
        {"slug": "plain", "name": "Plain", "base_url": f"{server.url}/plain/",
         "test_request": {"method": "GET", "path": "health"},
         "auth": {"type": "jwt_bearer", "algorithm": "HS256",
                  "key": {"env": "H5_SHARED_SECRET"}, "claims": {"aud": "plain"}}},
    ]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    manage_ok(env, "migrate", "-v", "0")
    manage_ok(env, "integrations_import", str(tmp_path / "config.json"))

    enqueued = json.loads(manage_ok(env, "integrations_test", "--all", "--enqueue", "--json").out)
    assert sorted(item["slug"] for item in enqueued) == ["plain", "shared"]
    manage_ok(env, "shell", "-c",
           "from integrations.models import Integration\n"
           "from integrations.tasks import enqueue_tests\n"
           "enqueue_tests([Integration.objects.get(slug='shared')] * 7)")

    run_rq_workers(env, redis_queue, WORKERS, tmp_path, DEADLINE)

    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT i.slug, l.source, l.ok, l.error FROM integrations_calllog l "
            "JOIN integrations_integration i ON i.id = l.integration_id"
        ).fetchall()
    assert sorted((slug, source, ok) for slug, source, ok, _ in rows) == (
        [("plain", "task", 1)] + [("shared", "task", 1)] * 8
    ), rows
    assert api.token_requests == 1
    assert len({r.bearer for r in server.calls("GET", "/shared/health")}) == 1
