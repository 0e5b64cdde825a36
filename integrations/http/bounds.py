"""Bounds on a call: connect and read timeouts, an overall deadline, a size cap.

requests' read timeout limits each ``recv``, not the call: a server sending one byte
every 0.4 s holds a ``timeout=(1, 1)`` call for as long as it likes (security.md #16). So:

- from the wait for the response head until the body is read, a watchdog thread (one
  per process) shuts the socket down if the deadline passes first;
- bodies are streamed here, one socket read at a time, with the socket's timeout shrunk
  to what is left of the deadline; decoded bytes are counted against the cap as they
  come, which also stops a gzip bomb early (security.md #17).
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.exceptions import ChunkedEncodingError, ContentDecodingError, ReadTimeout
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from ..exceptions import DeadlineExceeded, ResponseTooLarge
from ..settings import app_settings

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Bounds:
    """Timeouts for one call, and the monotonic time by which it must be over.

    It travels as requests' ``timeout`` argument, which requests hands unchanged to the
    adapter on every hop of a redirect and to the 401 retry, so one deadline covers all.
    """

    connect: float
    read: float
    deadline: float

    @classmethod
    def start(
        cls, timeout: Any, *, default_read: float, deadline: float | None = None
    ) -> Bounds:
        """Bounds from requests-style ``timeout`` (None, seconds, or (connect, read))."""
        if isinstance(timeout, Bounds):
            return timeout
        connect, read = app_settings.CONNECT_TIMEOUT, default_read
        if isinstance(timeout, tuple):
            connect, read = (
                connect if timeout[0] is None else timeout[0],
                read if timeout[1] is None else timeout[1],
            )
        elif timeout is not None:
            connect = read = float(timeout)
        if deadline is None:
            # At least room for a slow connect plus a full read timeout.
            deadline = max(read * app_settings.DEADLINE_FACTOR, connect + read)
        return cls(float(connect), float(read), time.monotonic() + deadline)

    def remaining(self) -> float:
        """Seconds left; raises DeadlineExceeded when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the call ran past its deadline")
        return left

    def for_attempt(self) -> tuple[float, float]:
        """(connect, read) timeouts for the next socket operation, within the deadline."""
        left = self.remaining()
        return min(self.connect, left), min(self.read, left)


class Watchdog:
    """Shuts down the sockets of calls still running at their deadline.

    One daemon thread and a heap of deadlines: watching a call costs a heap push under a
    plain lock, not a thread or timer per call. A shut-down socket makes the blocked
    read return at once, and the adapter reports DeadlineExceeded.
    """

    def __init__(self) -> None:
        self._reset()
        # A forked child has none of the parent's threads: start afresh there.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int]] = []
        self._watched: dict[int, Any] = {}  # ticket -> connection, until released
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        # The deadline the thread sleeps until: it is woken only for an earlier one,
        # so steady traffic costs a wake-up per deadline period, not one per call.
        self._sleeping_until = float("inf")

    def watch(self, deadline: float, connection: Any) -> int:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="integrations-deadline-watchdog", daemon=True
                )
                self._thread.start()
            ticket = next(self._ids)
            heapq.heappush(self._heap, (deadline, ticket))
            self._watched[ticket] = connection
            if deadline < self._sleeping_until:
                self._wake.notify()
            return ticket

    def release(self, ticket: int) -> None:
        """The call is over; its socket must not be touched any more."""
        with self._lock:
            # Gone already if the watchdog acted on it.
            if self._watched.pop(ticket, None) is not None:
                # Sequential calls release the earliest deadline: drop it now rather
                # than letting finished entries pile up until the watchdog next wakes.
                self._drop_released()

    def _drop_released(self) -> None:
        heap, watched = self._heap, self._watched
        while heap and heap[0][1] not in watched:
            heapq.heappop(heap)

    def _run(self) -> None:
        with self._lock:
            while True:
                self._drop_released()
                if not self._heap:
                    self._sleeping_until = float("inf")
                    self._wake.wait()
                    continue
                self._sleeping_until = self._heap[0][0]
                wait = self._sleeping_until - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                _, ticket = heapq.heappop(self._heap)
                sock = getattr(self._watched.pop(ticket), "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed


watchdog = Watchdog()
# The call this thread is making: its deadline, for the connection to be watched by,
# and the watch ticket, for the adapter to release once the body is read.
current = threading.local()


class WatchedConnectionMixin:
    """Puts the connection under the watchdog from the wait for the response head until
    the adapter has read the body (``current.ticket``), when the call has a deadline.

    Connecting needs no watch: its timeout is already capped by the deadline, and for
    TLS CPython applies a socket's timeout to the whole handshake, not to each read.
    """

    def getresponse(self) -> Any:
        deadline: float | None = getattr(current, "deadline", None)
        if deadline is None:
            return super().getresponse()  # type: ignore[misc]
        ticket = watchdog.watch(deadline, self)
        try:
            response = super().getresponse()  # type: ignore[misc]
        except BaseException:
            watchdog.release(ticket)
            raise
        earlier = getattr(current, "ticket", None)
        if earlier is not None:  # never left watched: its socket may serve another call
            watchdog.release(earlier)
        current.ticket = ticket
        return response


def check_length(response: requests.Response, max_bytes: int) -> None:
    """Refuse a declared Content-Length over the cap before reading anything."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise ResponseTooLarge(
            f"response declares {declared} bytes, over the {max_bytes}-byte cap "
            "(INTEGRATIONS_MAX_RESPONSE_BYTES)"
        )


def read_body(response: requests.Response, bounds: Bounds, max_bytes: int) -> None:
    """Read and decode the body into ``response.content`` within the deadline and cap.

    On any failure the connection is closed rather than returned to the pool, since
    part of the body may still be unread on it.
    """
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    try:
        if not response.headers.get("Content-Encoding"):
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                # Plain body of a known size (at most the cap: check_length ran): one
                # read, still under the watchdog so a dripping server cannot stretch it.
                response._content = raw.read(decode_content=False)
                response._content_consumed = True  # type: ignore[attr-defined]
                return
        while True:
            left = bounds.remaining()
            if left < bounds.read:
                # The socket has the read timeout; shrink it once the deadline is nearer.
                connection = raw.connection
                if connection is not None and connection.sock is not None:
                    connection.sock.settimeout(left)
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(
                    f"response body exceeds the {max_bytes}-byte cap "
                    "(INTEGRATIONS_MAX_RESPONSE_BYTES)"
                )
            chunks.append(chunk)
    except ReadTimeoutError:
        response.close()
        bounds.remaining()  # raises DeadlineExceeded when that is why the read stopped
        raise ReadTimeout(f"read timed out (read timeout={bounds.read})") from None
    except ProtocolError as exc:
        response.close()
        bounds.remaining()  # the watchdog cut it: DeadlineExceeded, not a broken body
        raise ChunkedEncodingError(str(exc)) from None
    except DecodeError as exc:
        response.close()
        raise ContentDecodingError(str(exc)) from None
    except BaseException:
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True  # type: ignore[attr-defined]
