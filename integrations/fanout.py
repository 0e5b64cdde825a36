"""Running one function over many items: on threads, and on worker processes when one
interpreter's lock is what limits the pace (docs/operations.md, "Testing thousands of
accounts").

Threads overlap work that waits on the network, but they share one interpreter lock:
a process never runs more than one CPU's worth of Python. A test call costs a few
milliseconds of CPU, so from a few hundred calls a second one process, not the remote
API, sets the pace. With ``processes`` > 1, ``fan_out`` forks that many workers; each
takes every ``processes``-th item, runs its share of the threads over them, and sends
what ``pack`` makes of each result back through a pipe, in small batches as they
finish; the calling process yields them, turned back by ``unpack``. Items a worker
never reported (it crashed or was killed) are yielded as ``lost`` makes them, so a run
always accounts for every item.

A worker forgets the database connections it inherited (the parent's sockets: it never
closes them, which would end the parent's session) and opens its own if it needs one;
the app's other per-process state (pooled HTTP connections, locks, signer sessions)
resets itself at the fork (``os.register_at_fork`` in those modules). Forking needs a
platform that has it (Linux and other Unixes); elsewhere everything runs on threads.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar, cast

from django.db import connections

from . import telemetry

T = TypeVar("T")
R = TypeVar("R")

# Results per message from a worker: few enough that progress keeps moving, enough
# that the pipe is not a message per result.
BATCH = 16
# The parent's database connections, held (never closed, never used) by a worker.
_inherited: list[Any] = []


class Codec(Generic[R]):
    """How a result crosses from a worker to the calling process: ``pack`` in the
    worker (to something picklable), ``unpack`` with the item's index in the caller;
    ``lost`` for an item whose worker ended before reporting it."""

    def __init__(
        self,
        pack: Callable[[R], Any],
        unpack: Callable[[int, Any], R],
        lost: Callable[[int, str], R],
    ) -> None:
        self.pack, self.unpack, self.lost = pack, unpack, lost


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def fan_out(
    items: Sequence[T],
    work: Callable[[T], R],
    *,
    threads: int,
    processes: int = 1,
    codec: Codec[R] | None = None,
) -> Iterator[tuple[int, R]]:
    """(index, ``work(item)``) pairs as they finish: ``threads`` in flight at once, over
    ``processes`` workers when more than one is asked for, ``codec`` is given and the
    platform can fork (else in this process)."""
    processes = min(processes, len(items))
    if processes <= 1 or codec is None or not can_fork():
        yield from threaded(items, work, threads)
        return
    yield from _forked(items, work, threads, processes, codec)


def threaded(items: Sequence[T], work: Callable[[T], R], threads: int) -> Iterator[tuple[int, R]]:
    """(index, result) pairs as they finish, from ``threads`` threads of this process."""
    if threads <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield index, work(item)
        return
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    for pair in enumerate(items):
        todo.put(pair)
    done: queue.SimpleQueue[tuple[int, R]] = queue.SimpleQueue()

    def run() -> None:
        while True:
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            done.put((index, work(item)))

    pool = [
        threading.Thread(target=run, name=f"integrations-fanout-{n}", daemon=True)
        for n in range(min(threads, len(items)))
    ]
    for thread in pool:
        thread.start()
    for _ in items:
        yield done.get()
    for thread in pool:
        thread.join()


def _forked(
    items: Sequence[T], work: Callable[[T], R], threads: int, processes: int, codec: Codec[R]
) -> Iterator[tuple[int, R]]:
    context = multiprocessing.get_context("fork")
    share = -(-threads // processes)  # ceil: --parallel 32 over 3 workers is 11 each
    workers: dict[Connection, tuple[list[int], set[int], Any]] = {}
    try:
        for number in range(processes):
            shard = list(range(number, len(items), processes))
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(writer, [items[i] for i in shard], work, share, codec.pack),
                name=f"integrations-fanout-{number}",
                daemon=True,
            )
            process.start()
            writer.close()  # the worker's end: EOF here once the worker is gone
            workers[reader] = (shard, set(range(len(shard))), process)
        while workers:
            for ready in wait(list(workers)):
                reader = cast(Connection, ready)
                shard, pending, process = workers[reader]
                try:
                    batch = reader.recv()
                except EOFError:
                    del workers[reader]
                    process.join()
                    reason = f"the worker process ended (exit code {process.exitcode})"
                    for position in sorted(pending):
                        yield shard[position], codec.lost(shard[position], reason)
                    continue
                for position, packed in batch:
                    pending.discard(position)
                    yield shard[position], codec.unpack(shard[position], packed)
    finally:
        for _, _, process in workers.values():
            if process.is_alive():
                process.terminate()
            process.join()


def _worker(
    writer: Connection, items: list[Any], work: Callable[[Any], Any], threads: int,
    pack: Callable[[Any], Any],
) -> None:
    """A forked worker: its items on its threads, results back in batches."""
    _forget_database_connections()
    batch: list[tuple[int, Any]] = []
    for position, result in threaded(items, work, threads):
        batch.append((position, pack(result)))
        if len(batch) >= BATCH:
            writer.send(batch)
            batch = []
    if batch:
        writer.send(batch)
    writer.close()
    telemetry.flush()  # the worker exits without running the interpreter's exit hooks


def _forget_database_connections() -> None:
    """New connections from here on: the inherited ones are the parent's sessions."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited.append(connection.connection)
        connection.connection = None
        connection.in_atomic_block = False
        connection.savepoint_ids = []
        connection.atomic_blocks = []
        connection.needs_rollback = False
        connection.closed_in_transaction = False
