"""The background writer (``INTEGRATIONS_LOG_WRITER = "background"``)."""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from typing import Any

from django.db import connections, router, transaction

from ..models import CallLog
from .insert import insert_many, write

# A queued row: the integration's slug (for the error message if it cannot be written)
# and the row's column values.
Queued = tuple[str, dict[str, Any]]


class BackgroundWriter:
    """Writes queued rows in batches from one thread (``INTEGRATIONS_LOG_WRITER =
    "background"``): a call pays for a queue put, and the database for one transaction
    per batch instead of one per row.

    The queue is bounded: when it is full (the database cannot keep up) the caller writes
    its own row, which slows calls down instead of losing rows. Queued rows are written
    at interpreter exit; a killed process loses them.
    """

    MAX_QUEUED = 10_000
    MAX_BATCH = 500
    # After the first row of a batch, wait this long for more: a batch per row would
    # cost a thread switch and a commit per call, which is what this writer saves.
    LINGER = 0.01

    def __init__(self) -> None:
        self._reset()
        # A forked child has none of the parent's threads: start afresh there (rows
        # still queued in the parent are the parent's to write).
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.Queue[Queued | threading.Event] = queue.Queue(self.MAX_QUEUED)
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, slug: str, values: dict[str, Any]) -> bool:
        """Queue a row (its column values); False when the queue is full and the caller
        must write it."""
        if self._thread is None:
            self._started()
        try:
            self._queue.put_nowait((slug, values))
        except queue.Full:
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row queued so far is written; False on timeout. The writer
        then closes its database connection (a test database can then be dropped)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _started(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="integrations-call-log-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush, 5.0)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            if not isinstance(items[0], threading.Event):
                time.sleep(self.LINGER)
            while len(items) < self.MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [item for item in items if isinstance(item, tuple)]
            if rows:
                self._write(rows)
            flushes = [item for item in items if isinstance(item, threading.Event)]
            if flushes:
                connections.close_all()
            for event in flushes:
                event.set()

    def _write(self, rows: list[Queued]) -> None:
        using = router.db_for_write(CallLog)
        try:
            with transaction.atomic(using=using):
                insert_many([values for _, values in rows], using)
        except Exception:
            # One bad row (say, of an integration deleted meanwhile) must not cost the
            # others theirs: write them one by one, each failure logged on its own.
            connections[using].close_if_unusable_or_obsolete()
            for slug, values in rows:
                write(slug, values, using)


writer = BackgroundWriter()
