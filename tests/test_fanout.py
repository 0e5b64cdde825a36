"""Worker processes for big test runs (integrations/fanout.py; docs/operations.md,
"Testing thousands of accounts"): every item reported exactly once, from the workers,
a dead worker's items reported lost rather than missing, and a worker never using the
parent's database session (security.md #25)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import connection

from integrations.fanout import Codec, can_fork, fan_out
from tests.child import FORKS

pytestmark = [pytest.mark.skipif(not can_fork(), reason="needs fork()"), FORKS]

IDENTITY: Codec[Any] = Codec(
    pack=lambda result: result,
    unpack=lambda index, packed: packed,
    lost=lambda index, reason: ("lost", reason),
)


def square_with_pid(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


def test_every_item_once_from_the_worker_processes() -> None:
    done = list(fan_out(range(40), square_with_pid, threads=4, processes=2, codec=IDENTITY))

    assert sorted(index for index, _ in done) == list(range(40))
    assert all(result[1] == index * index for index, result in done)
    pids = {result[0] for _, result in done}
    assert len(pids) == 2 and os.getpid() not in pids


def test_one_process_or_no_codec_stays_in_this_process() -> None:
    for kwargs in ({"processes": 1, "codec": IDENTITY}, {"processes": 4}):
        done = dict(fan_out(range(5), square_with_pid, threads=2, **kwargs))  # type: ignore[arg-type]
        assert {pid for pid, _ in done.values()} == {os.getpid()}
        assert sorted(done) == list(range(5))


def dies_on_seven(n: int) -> int:
    if n == 7:
        os._exit(3)
    return n


def test_a_dead_workers_unreported_items_come_back_lost() -> None:
    done = dict(fan_out(range(20), dies_on_seven, threads=1, processes=2, codec=IDENTITY))

    assert sorted(done) == list(range(20))  # every item accounted for, none twice
    assert done[7] == ("lost", "the worker process ended (exit code 3)")
    # The other worker (even items) finished all of its own.
    assert all(done[n] == n for n in range(0, 20, 2))


def backend_pid(_: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_a_worker_opens_its_own_database_session_and_leaves_the_parents() -> None:
    """The parent is inside a transaction (the test's): a worker that used the
    inherited socket would interleave with it, and one that closed it would end it."""
    parents = backend_pid(0)
    done = dict(fan_out(range(2), backend_pid, threads=1, processes=2, codec=IDENTITY))

    assert len(set(done.values())) == 2 and parents not in done.values()
    assert backend_pid(0) == parents  # the parent's session still works, unchanged
