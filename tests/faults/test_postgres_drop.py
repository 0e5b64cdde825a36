"""PostgreSQL drops the app's connections (``pg_terminate_backend``) while logged calls
run on 4 threads: callers keep their responses, every call-log row is written or
counted as lost (a log line and the ``integrations.calllog.lost_rows`` metric, never
silently missing), and the app reconnects by itself: rows of later calls are written
(security.md #25, #27).

Runs in CI's PostgreSQL stage (``DATABASE_URL=postgres://...``) on the test database
Django created; the connections are dropped from a separate psycopg connection.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from integrations import services
from integrations.calllog import lost_rows, writer
from integrations.models import CallLog
from tests.faults.emulator import run_threads
from tests.loopback import LoopbackServer, Reply

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]

THREADS = 4
DROPS = 3  # times the connections are dropped, DROP_EVERY seconds apart
DROP_EVERY = 0.7
TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def drop_connections() -> int:
    """Terminate every other backend of the test database; how many."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
        connect_timeout=5,
    ) as admin:
        return len(admin.execute(TERMINATE).fetchall())


@pytest.mark.parametrize("log_writer", ["sync", "background"])
def test_calls_and_their_rows_survive_dropped_connections(
    server: LoopbackServer, make_integration: Any, settings: Any, caplog: Any, log_writer: str
) -> None:
    settings.INTEGRATIONS_LOG_WRITER = log_writer
    settings.INTEGRATIONS_SESSION_RECHECK = 3600  # the threads query only to log
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    integration = make_integration(base_url=f"{server.url}/api/", log_calls="all")
    services.get_session("billing")
    lost_before = (writer.lost, writer.dropped)
    caplog.set_level(logging.ERROR, logger="integrations.calllog")

    stop = threading.Event()
    statuses: list[list[Any]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        try:
            while not stop.is_set():
                try:
                    statuses[index].append(services.request("billing", "GET", "x").status_code)
                except Exception as exc:  # recorded, asserted on below
                    statuses[index].append(exc)
                time.sleep(0.005)
        finally:
            connections.close_all()  # this thread's connection, so the test database can go

    runner = threading.Thread(target=lambda: run_threads(THREADS, work, join_timeout=60))
    runner.start()
    dropped: list[int] = []
    try:
        time.sleep(0.5)
        for _ in range(DROPS):
            dropped.append(drop_connections())
            time.sleep(DROP_EVERY)
        last_drop = timezone.now()
        time.sleep(0.5)  # calls after the last drop: their rows prove the reconnect
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive(), "a call hung"
    assert writer.flush(30)
    connection.close()  # the test's own connection was dropped too

    calls = [status for thread in statuses for status in thread]
    assert calls and calls == [200] * len(calls), [c for c in calls if c != 200][:3]
    assert sum(dropped) >= DROPS  # the app's connections really went
    written = CallLog.objects.filter(integration=integration).count()
    if log_writer == "sync":
        lost = lost_rows.count
    else:
        lost = writer.lost - lost_before[0] + writer.dropped - lost_before[1]
    assert written + lost >= len(calls)  # never silently missing
    # At least once: a write whose commit the drop cut off may be written again on the
    # new connection (one row per thread, or one batch, per drop at most).
    assert written - len(calls) <= DROPS * max(THREADS, writer.MAX_BATCH)
    if lost:  # said in a log line (the metric is tested with the disk full)
        messages = [r.getMessage() for r in caplog.records]
        assert any("could not write the call log row" in m or "row(s) lost" in m for m in messages)
    after = CallLog.objects.filter(
        integration=integration, created_at__gt=last_drop + datetime.timedelta(seconds=0.1)
    )
    assert after.exists(), "no row written after the connections were dropped"
