"""Tests that run the app in several real processes (security.md #23, #31): a Redis
namespace of the test's own, RQ workers in burst mode, and worker processes started
together so that they race on a cold cache.

Redis is skipped when it cannot be reached, except under ``REQUIRE_REDIS`` (CI), where
a proof across processes must not vanish silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.commands.helpers import ROOT


@contextmanager
def redis_namespace(url: str, prefix: str) -> Iterator[str]:
    """A name no other run uses (a queue, a cache key prefix) on the Redis at ``url``,
    or a skip saying why; afterwards the keys of that name are deleted, and rq's job,
    result and worker keys of a queue of that name (never the database's others)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail(f"REQUIRE_REDIS is set but Redis is not reachable at {url}: {exc}")
        pytest.skip(f"Redis is not reachable at {url}: {exc}")
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        delete_redis_keys(client, name)
        client.close()


def delete_redis_keys(client: Any, name: str) -> None:
    """Delete a run's keys from a shared Redis: those naming ``name`` (its queue, its
    cache prefix), and rq's job, result and worker keys of the queue ``name``, which do
    not name it (they would otherwise linger until their TTLs)."""
    for key in client.scan_iter(match=f"*{name}*"):
        client.delete(key)
    client.srem("rq:queues", f"rq:queue:{name}")
    for key in client.scan_iter(match="rq:job:*"):
        if client.type(key) == b"hash" and client.hget(key, "origin") == name.encode():
            job = key.decode().rsplit(":", 1)[1]
            client.delete(key, f"rq:results:{job}")
    for key in client.scan_iter(match="rq:worker:*"):
        if client.type(key) == b"hash" and name.encode() in (client.hget(key, "queues") or b""):
            client.delete(key)


def rq_env(database: Path | str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """The environment of ``manage.py`` and ``rqworker`` processes on the SQLite file
    ``database``, with cache and RQ on ``redis_url`` and the queue (also the cache's key
    prefix) ``queue`` (tests/tasks/rq_settings.py)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tasks.rq_settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "CACHE_URL": redis_url,
        "TEST_RQ_URL": redis_url,
        "TEST_RQ_QUEUE": queue,
        **extra,
    }


def run_rq_workers(
    env: dict[str, str], queue: str, count: int, log_dir: Path, deadline: float
) -> None:
    """``count`` burst ``rqworker`` processes on ``queue`` until it is empty, within
    ``deadline`` seconds for all; fails with their logs unless every one exits 0."""
    logs = [log_dir / f"worker-{n}.log" for n in range(count)]
    with ExitStack() as files:
        workers = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "rqworker", "--burst",
                 "--job-class", "django_tasks_rq.Job", queue],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=files.enter_context(log.open("w")),
            )
            for log in logs
        ]
        try:
            end = time.monotonic() + deadline
            for worker in workers:
                worker.wait(timeout=max(1, end - time.monotonic()))
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    text = "".join(log.read_text() for log in logs)
    assert all(worker.returncode == 0 for worker in workers), text[-3000:]


def run_together(
    command: Sequence[str], count: int, env: dict[str, str], timeout: float
) -> list[Any]:
    """``count`` processes of ``command`` (a worker that prints "ready", waits for a line
    on stdin, does its work and prints a JSON line last), let go at once when all are
    ready: each one's JSON, in order. Fails with a process's stderr when it does."""
    workers = [
        subprocess.Popen(
            list(command), env=env, cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:
            assert worker.stdout and worker.stdout.readline().strip() == "ready", (
                worker.stderr.read() if worker.stderr else ""
            )
        for worker in workers:
            assert worker.stdin
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=timeout)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
