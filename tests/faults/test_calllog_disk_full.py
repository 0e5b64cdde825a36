"""The call log's disk is full (SQLite): calls still return, every row is written or
counted as lost, and the failure is logged once per interval, not once per call
(security.md #25, #27).

SQLite's ``PRAGMA max_page_count`` caps the test database at its current size, and a
filler table takes the free pages left, so every later insert fails with "database
or disk is full" as on a full disk; the cap is lifted and the filler dropped after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection

from integrations import services, telemetry
from integrations.calllog import lost_rows
from integrations.models import CallLog
from tests.loopback import LoopbackServer, Reply
from tests.test_telemetry import Recorded

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's page cap"),
]

CALLS = 200
LOST_LINE = "could not write the call log row for billing"


def fill_the_disk() -> int:
    """Cap the database at its size and take every free page; the cap before."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE faults_filler (data BLOB)")
        cursor.execute("PRAGMA max_page_count")
        before = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        cursor.execute(f"PRAGMA max_page_count = {int(cursor.fetchone()[0])}")
        for size in (4096, 512, 64, 8):  # big blobs first, then what still fits
            for _ in range(100_000):  # bounded: a page cap is reached long before
                try:
                    cursor.execute("INSERT INTO faults_filler VALUES (randomblob(%s))", [size])
                except OperationalError as exc:
                    assert "full" in str(exc)
                    break
    return before


def free_the_disk(cap: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA max_page_count = {cap}")
        cursor.execute("DROP TABLE IF EXISTS faults_filler")


@pytest.fixture
def full_disk() -> Iterator[int]:
    """The disk full; yields the page cap the database had (to free it mid-test)."""
    cap = fill_the_disk()
    try:
        yield cap
    finally:
        free_the_disk(cap)


@pytest.fixture
def api(server: LoopbackServer, make_integration: Any) -> LoopbackServer:
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    make_integration(
        base_url=f"{server.url}/api/", log_calls="all", test_request={"path": "health"}
    )
    services.get_session("billing")
    return server


def lost_lines(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if LOST_LINE in r.getMessage()]


def test_a_full_disk_costs_no_call_and_one_log_line_per_interval(
    api: LoopbackServer, full_disk: int, caplog: Any
) -> None:
    recorded = Recorded()
    telemetry.use_providers(recorded.tracer_provider, recorded.meter_provider)
    caplog.set_level(logging.ERROR, logger="integrations.calllog")
    try:
        statuses = [services.request("billing", "GET", "x").status_code for _ in range(CALLS)]
        test_row = services.run_test("billing")  # a test call's row: the same path
        lines = lost_lines(caplog)
        points = recorded.points("integrations.calllog.lost_rows")
    finally:
        telemetry.use_providers()
    assert statuses == [200] * CALLS
    assert test_row.ok and test_row.pk is None  # returned, though not written
    # Logged once for the whole run (the interval is a minute), naming the cause.
    assert len(lines) == 1, lines
    assert "database or disk is full" in lines[0]
    assert lost_rows.count > CALLS / 2  # some rows still fit in pages the log had
    assert sum(point.value for point in points) == lost_rows.count
    free_the_disk(full_disk)
    written = CallLog.objects.count()
    assert written + lost_rows.count == CALLS + 1  # never silently missing


def test_the_next_report_counts_what_was_lost_since(
    api: LoopbackServer, full_disk: int, caplog: Any, monkeypatch: Any
) -> None:
    """Once the interval has passed, the next loss is logged with the number lost since
    the last line; after the disk is freed, rows are written again."""
    monkeypatch.setattr(lost_rows, "REPORT_EVERY", 0.5)
    caplog.set_level(logging.ERROR, logger="integrations.calllog")
    for _ in range(CALLS * 5):  # until the pages the log had are used up
        services.request("billing", "GET", "x")
        if lost_rows.count:
            break
    for _ in range(10):
        services.request("billing", "GET", "x")
    assert lost_rows.count == 11 and len(lost_lines(caplog)) == 1
    time.sleep(0.6)
    services.request("billing", "GET", "x")
    lines = lost_lines(caplog)
    assert len(lines) == 2
    assert "11 row(s) lost since the last report, 12 in all" in lines[1]
    lost_before = lost_rows.count
    free_the_disk(full_disk)
    services.request("billing", "GET", "x")
    assert lost_rows.count == lost_before
    assert CallLog.objects.count() >= 1
