"""The background writer (``INTEGRATIONS_LOG_WRITER = "background"``).

What it promises (docs/service.md, the call log): a queued row is written within
``FLUSH_INTERVAL`` seconds plus the time its batch takes; everything queued is written
when the process stops normally (interpreter exit: ``atexit``, or ``stop()``); a process
killed outright (``kill -9``, or SIGTERM to a process that does not handle it) loses the
rows still queued, at most ``MAX_QUEUED`` and in practice about ``FLUSH_INTERVAL``
seconds of calls. A row that cannot be queued (the queue is full) or written is counted
in ``dropped`` or ``lost`` and logged, never silently gone.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

from django.db import connections, router, transaction

from ..models import CallLog
from ..telemetry import rows_lost
from .insert import insert, insert_many

logger = logging.getLogger(__name__)

# A queued row: the integration's slug (for the error message if it cannot be written)
# and the row's column values.
Queued = tuple[str, dict[str, Any]]


class _Flush(threading.Event):
    """A flush request in the queue: set once every row queued before it is written."""

    def __init__(self, close: bool) -> None:
        super().__init__()
        self.close = close


class BackgroundWriter:
    """Writes queued rows in batches from one thread per process: a call pays for a
    queue put, and the database for one statement and one commit per batch (COPY on
    PostgreSQL) instead of one per row.

    The queue is bounded, so a database that cannot keep up (or is down) costs memory
    up to ``MAX_QUEUED`` rows and never the callers' time: past it, rows are dropped,
    counted in ``dropped`` and logged (at most one warning per ``WARN_EVERY`` seconds).
    """

    MAX_QUEUED = 10_000
    MAX_BATCH = 1_000
    # Rows are written this long after the first of a batch was queued (or at once
    # when MAX_BATCH are waiting, or on flush): the bound on what kill -9 loses, and
    # what makes batches big enough to cost a commit per batch instead of per call.
    FLUSH_INTERVAL = 0.2
    WARN_EVERY = 60.0

    def __init__(self) -> None:
        self.dropped = 0  # rows not queued because the queue was full
        self.lost = 0  # queued rows the database refused (each logged)
        self._reset()
        # A forked child has none of the parent's threads: start afresh there (rows
        # still queued in the parent are the parent's to write).
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.Queue[Queued | _Flush] = queue.Queue(self.MAX_QUEUED)
        self._wake = threading.Event()
        self._start = threading.Lock()
        self._counts = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned_at: dict[str, float] = {}
        self._unreported: dict[str, int] = {}

    def submit(self, slug: str, values: dict[str, Any]) -> bool:
        """Queue a row (its column values); False when the queue is full and the row
        was dropped (counted and logged)."""
        if self._thread is None:
            self._started()
        try:
            self._queue.put_nowait((slug, values))
        except queue.Full:
            self._note_dropped()
            return False
        if self._queue.qsize() >= self.MAX_BATCH:
            self._wake.set()  # a full batch is due now
        return True

    def flush(self, timeout: float | None = None, *, close: bool = True) -> bool:
        """Write every row queued so far now, and wait until they are in; False on
        timeout. With ``close`` the writer then closes its database connection (a test
        database can then be dropped); without, it keeps it, as it does between batches
        (the benchmark, which flushes after every round)."""
        if self._thread is None:
            return True
        done = _Flush(close)
        self._queue.put(done)
        self._wake.set()
        return done.wait(timeout)

    def stop(self, timeout: float | None = 5.0) -> bool:
        """What a normal stop runs (registered with ``atexit``): write what is queued.
        Later rows start the writer again."""
        return self.flush(timeout)

    def _started(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="integrations-call-log-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.stop)

    def _note_dropped(self) -> None:
        with self._counts:
            self.dropped += 1
        why = f"call log queue full ({self.MAX_QUEUED} rows): the database is not keeping up"
        self._report("dropped", 1, why)

    def _report(self, kind: str, count: int, why: str) -> None:
        """Log rows dropped or lost: at once, then at most once per WARN_EVERY seconds
        with the count since (a database outage must not flood the log)."""
        rows_lost(count, kind)
        with self._counts:
            self._unreported[kind] = self._unreported.get(kind, 0) + count
            now = time.monotonic()
            if now - self._warned_at.get(kind, -self.WARN_EVERY) < self.WARN_EVERY:
                return
            self._warned_at[kind] = now
            count = self._unreported.pop(kind)
            total = self.dropped if kind == "dropped" else self.lost
        logger.error("%d call log row(s) %s, %d in all: %s", count, kind, total, why)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            if not isinstance(items[0], _Flush) and self._queue.qsize() < self.MAX_BATCH:
                # The timer: more rows join this batch until it is due, unless a flush
                # or a full batch cuts it short.
                self._wake.wait(self.FLUSH_INTERVAL)
            self._wake.clear()
            while len(items) < self.MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [item for item in items if isinstance(item, tuple)]
            if rows:
                self._write(rows)
            flushes = [item for item in items if isinstance(item, _Flush)]
            if any(flush.close for flush in flushes):
                connections.close_all()
            for event in flushes:
                event.set()

    def _write(self, rows: list[Queued]) -> None:
        using = router.db_for_write(CallLog)
        connection = connections[using]
        try:
            with transaction.atomic(using=using):
                insert_many([values for _, values in rows], using)
            return
        except Exception:  # noqa: S110 - retried below, row by row
            pass
        connection.close_if_unusable_or_obsolete()
        try:
            connection.ensure_connection()
        except Exception as exc:
            # The database is unreachable: row by row would only fail as many times.
            with self._counts:
                self.lost += len(rows)
            self._report("lost", len(rows), f"database unavailable ({type(exc).__name__})")
            return
        # One bad row (say, a value a CHECK constraint refuses) must not cost the
        # others theirs: write them one by one, each failure logged on its own.
        for slug, values in rows:
            try:
                insert(values, connection)
            except Exception:
                with self._counts:
                    self.lost += 1
                rows_lost(1, "lost")
                logger.exception("could not write the call log row for %s (lost)", slug)
                connection.close_if_unusable_or_obsolete()


writer = BackgroundWriter()
