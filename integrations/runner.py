"""Test calls over many integrations at once, on a pool of threads.

The calls wait on the network, so threads overlap them: with ``parallel`` threads, N
integrations that each answer in t seconds take about N·t/parallel. The threads only
talk HTTP; the calling thread writes the log rows, so a run opens no extra database
connection and works on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import DatabaseError, transaction

from .audit import build_row, describe_error
from .models import CallLog, Integration

logger = logging.getLogger(__name__)

DEFAULT_PARALLEL = 8
WRITE_BATCH = 200


def default_parallel(count: int) -> int:
    """Threads for ``count`` integrations when the operator does not say."""
    return max(1, min(DEFAULT_PARALLEL, count))


def summary(row: CallLog) -> dict[str, Any]:
    """A test call's result as JSON: what a task returns and ``--json`` prints."""
    return {
        "slug": row.integration.slug,
        "ok": row.ok,
        "status_code": row.status_code,
        "duration_ms": row.duration_ms,
        "error": row.error or None,
        "url": row.url,
        "attempts": row.attempts,
        "log_id": row.pk,
    }


def fire_test(integration: Integration, source: str) -> CallLog:
    """The test call as an unsaved ``CallLog``; touches no database, so it runs on any
    thread. An unexpected error becomes a failed result, so one broken integration never
    stops a run over the others."""
    from .services import perform_test

    try:
        outcome, ok, error = perform_test(integration, source=source, cached=False)
    except Exception as exc:
        logger.exception("test call for %s failed unexpectedly", integration.slug)
        return CallLog(
            integration=integration, source=source, is_test=True, ok=False,
            error=describe_error(exc),
        )
    return build_row(integration, source, outcome, ok=ok, is_test=True, error=error)


def run_tests(
    integrations: Sequence[Integration],
    *,
    source: str,
    parallel: int | None = None,
    on_result: Callable[[CallLog], None] | None = None,
) -> list[CallLog]:
    """Fire each integration's test request, ``parallel`` at a time, and log every one;
    returns the rows in input order.

    Only the calling thread writes to the database, in batches: SQLite allows one writer
    at a time, and a batch costs one commit instead of one per row. ``on_result`` is
    called in the calling thread as each result arrives (for progress).
    """
    threads = parallel if parallel is not None else default_parallel(len(integrations))
    results: list[CallLog | None] = [None] * len(integrations)
    unsaved: list[CallLog] = []
    for index, row in _completed(integrations, source, threads):
        results[index] = row
        unsaved.append(row)
        if len(unsaved) >= WRITE_BATCH:
            _save(unsaved)
        if on_result is not None:
            on_result(row)
    _save(unsaved)
    return [row for row in results if row is not None]


def _save(rows: list[CallLog]) -> None:
    if not rows:
        return
    try:
        with transaction.atomic():
            CallLog.objects.bulk_create(rows)
    except DatabaseError:
        # As audit.write: a log that cannot be written never hides the results.
        logger.exception("could not write %d test call log rows", len(rows))
    rows.clear()


def _completed(
    integrations: Sequence[Integration], source: str, threads: int
) -> Iterator[tuple[int, CallLog]]:
    """(index, row) pairs as calls finish, from ``threads`` threads."""
    if threads <= 1 or len(integrations) <= 1:
        for index, integration in enumerate(integrations):
            yield index, fire_test(integration, source)
        return
    todo: queue.SimpleQueue[tuple[int, Integration]] = queue.SimpleQueue()
    for item in enumerate(integrations):
        todo.put(item)
    done: queue.SimpleQueue[tuple[int, CallLog]] = queue.SimpleQueue()

    def work() -> None:
        while True:
            try:
                index, integration = todo.get_nowait()
            except queue.Empty:
                return
            done.put((index, fire_test(integration, source)))

    pool = [
        threading.Thread(target=work, name=f"integrations-test-{n}", daemon=True)
        for n in range(min(threads, len(integrations)))
    ]
    for thread in pool:
        thread.start()
    for _ in integrations:
        yield done.get()
    for thread in pool:
        thread.join()
