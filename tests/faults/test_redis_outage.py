"""Redis, the shared token cache, stops mid-run under 8 threads of calls, then returns.

The test starts its own ``redis-server`` on a free port (never the shared one on 6379),
points Django's cache at it, and runs 8 threads of calls through ``services`` against a
loopback API whose tokens live 4 s (so they are refreshed every 2 s, through the
shared cache). Mid-run the Redis process is SIGKILLed; later it is started again on the
same port. What must hold (security.md #22, #23, #15-#16):

- calls go on with the process-local cache: tokens are refreshed single-flight in the
  process (one token request in flight) and calls succeed during the outage;
- at most one failed call per thread around the moment Redis stops (none expected);
- no call hangs past its deadline (short socket timeouts on the cache, and the shared
  cache skipped for a while after an error);
- the outage is logged once, not per call;
- when Redis returns, sharing resumes: a token is written to Redis again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from integrations import services
from tests.faults.emulator import Call, TokenEndpoint, grant_integration, run_threads, timed_call
from tests.faults.processes import RedisProcess

pytestmark = pytest.mark.django_db

THREADS = 8
TIMEOUT = 2.0  # the integration's read timeout; a call's deadline is 3x this
UP, DOWN = 2.0, 4.5  # seconds with Redis up before the kill, then down
RETURN_BOUND = 15.0  # seconds after the restart by which a token must be shared again


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[RedisProcess]:
    """Django's cache on a Redis of this test's own, with short socket timeouts
    (docs: a cache without them can hold a call for as long as the kernel waits)."""
    settings.INTEGRATIONS_SESSION_RECHECK = 3600  # no queries from the threads
    with RedisProcess() as process:
        cache = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": process.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        with override_settings(CACHES={"default": cache}):
            yield process


def shared_tokens(process: RedisProcess) -> list[bytes]:
    """The token entries in Redis (not the refresh locks)."""
    return [key for key in process.keys() if not key.endswith(b":lock")]


def test_calls_survive_redis_stopping_and_share_again_when_it_returns(
    server: Any, make_integration: Any, redis_cache: RedisProcess, caplog: Any
) -> None:
    endpoint = TokenEndpoint(server, expires_in=4)
    grant_integration(make_integration, endpoint, timeout=TIMEOUT)
    assert services.request("billing", "GET", "resource").status_code == 200
    assert shared_tokens(redis_cache), "the first token was not shared through Redis"

    stop = threading.Event()
    calls: list[list[Call]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        while not stop.is_set():
            calls[index].append(timed_call())
            time.sleep(0.01)

    caplog.set_level(logging.WARNING, logger="integrations.tokens")
    runner = threading.Thread(
        target=lambda: run_threads(THREADS, work, join_timeout=UP + DOWN + RETURN_BOUND + 30)
    )
    runner.start()
    try:
        time.sleep(UP)
        killed_at = time.monotonic()
        redis_cache.kill()
        time.sleep(DOWN)
        restarted_at = time.monotonic()
        redis_cache.start()  # same port, empty: whatever appears was written again
        shared_again = False
        while time.monotonic() < restarted_at + RETURN_BOUND and not shared_again:
            time.sleep(0.2)
            shared_again = bool(shared_tokens(redis_cache))
    finally:
        stop.set()
        runner.join(3 * TIMEOUT + 30)
    assert not runner.is_alive(), "a call hung past every deadline"

    assert shared_again, "no token was written to Redis after it returned"
    for thread in calls:
        failures = [outcome for _, _, outcome in thread if outcome != 200]
        assert len(failures) <= 1, failures[:3]
    durations = [end - start for thread in calls for start, end, _ in thread]
    assert max(durations) < 3 * TIMEOUT
    during = [
        outcome
        for thread in calls
        for start, _, outcome in thread
        if killed_at + 0.5 < start < restarted_at
    ]
    assert during.count(200) >= THREADS, "calls did not go on while Redis was down"
    # Tokens were refreshed in the process meanwhile, one request at a time.
    assert endpoint.requests_between(killed_at + 0.5, restarted_at) >= 1
    assert endpoint.max_in_flight == 1
    # Logged once for the outage, not per call (a second line only if a connection
    # broke again right as Redis came back).
    outages = [r for r in caplog.records if "shared token cache unavailable" in r.message]
    assert 1 <= len(outages) <= 2, [r.message for r in outages]
    assert any("reachable again" in r.message for r in caplog.records)
