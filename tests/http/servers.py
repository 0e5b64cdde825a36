"""Servers that misbehave on purpose, for the bounds tests: raw sockets on 127.0.0.1."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable

Script = Callable[[socket.socket], None]


class RawServer:
    """Accepts connections and runs ``script(conn)`` on each after reading the request
    head; the script writes whatever bytes it likes."""

    def __init__(self, script: Script, *, read_head: bool = True) -> None:
        self.script = script
        self.read_head = read_head
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b"" if self.read_head else b"\r\n\r\n"
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            try:
                self.script(conn)
            except OSError:
                pass  # the client gave up, as it should

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        self.listener.close()


def drip(interval: float, length: int = 1000) -> Script:
    """Headers at once, then one body byte every ``interval`` seconds."""

    def script(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        for _ in range(length):
            conn.sendall(b"x")
            time.sleep(interval)

    return script


def silent(seconds: float) -> Script:
    """Says nothing for ``seconds`` (a read timeout)."""

    def script(conn: socket.socket) -> None:
        time.sleep(seconds)

    return script


def silent_first(seconds: float, then: bytes) -> Script:
    """Says nothing for ``seconds`` on the first connection, then answers ``then`` on
    every later one."""
    calls = itertools.count()

    def script(conn: socket.socket) -> None:
        if next(calls) == 0:
            time.sleep(seconds)
        else:
            conn.sendall(then)

    return script


def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])
