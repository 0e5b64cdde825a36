"""A token endpoint and the API behind it, on a loopback server, for fault tests.

The endpoint counts the token requests it serves and how many were in flight at once
(the thundering-herd measure); ``fail_for(seconds)`` makes it answer 500 for a while.
The API at ``/api/resource`` accepts only tokens the endpoint issued.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from integrations import services
from tests.keys import HMAC_SECRET
from tests.loopback import LoopbackServer, Recorded, Reply


class TokenEndpoint:
    def __init__(
        self, server: LoopbackServer, *, expires_in: int = 3600, delay: float = 0.02
    ) -> None:
        self.server = server
        self.expires_in = expires_in
        self.delay = delay
        self.lock = threading.Lock()
        self.issued: set[str] = set()
        self.counter = itertools.count(1)
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[tuple[float, int]] = []  # (time.monotonic(), status answered)
        self.failing_until = 0.0
        server.route("POST", "/token", self.token)
        server.route("GET", "/api/resource", self.resource)

    @property
    def url(self) -> str:
        return f"{self.server.url}/token"

    def fail_for(self, seconds: float) -> None:
        """Answer 500 to every token request for the next ``seconds``."""
        self.failing_until = time.monotonic() + seconds

    def requests_between(self, start: float, end: float, status: int | None = None) -> int:
        with self.lock:
            return sum(
                start <= at < end and status in (None, answered) for at, answered in self.started
            )

    def token(self, request: Recorded) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failing = time.monotonic() < self.failing_until
            self.started.append((time.monotonic(), 500 if failing else 200))
        try:
            time.sleep(self.delay)  # long enough for concurrent requests to overlap
            if failing:
                return Reply(500, {"error": "server_error"})
            value = f"token-{next(self.counter)}"
            with self.lock:
                self.issued.add(value)
            return Reply(
                200, {"access_token": value, "token_type": "Bearer", "expires_in": self.expires_in}
            )
        finally:
            with self.lock:
                self.in_flight -= 1

    def resource(self, request: Recorded) -> Reply:
        with self.lock:
            known = request.bearer in self.issued
        return Reply(200, {"ok": True}) if known else Reply(401, {"error": "invalid_token"})


def grant_integration(make_integration: Any, endpoint: TokenEndpoint, **fields: Any) -> Any:
    """A jwt_grant integration ``billing`` that trades an HS256 assertion at ``endpoint``
    for the bearer token its ``/api/resource`` accepts; calls are not logged unless
    ``log_calls`` says so."""
    fields.setdefault("log_calls", "none")
    return make_integration(
        base_url=f"{endpoint.server.url}/api/",
        auth_type="jwt_grant",
        auth_config={"algorithm": "HS256", "claims": {}, "token_url": endpoint.url},
        secrets={"key": HMAC_SECRET},
        **fields,
    )


# One call: when it started and ended (monotonic), and its status or the exception.
Call = tuple[float, float, Any]


def timed_call() -> Call:
    """``GET resource`` of ``billing`` through the service layer, never raising."""
    start = time.monotonic()
    try:
        outcome: Any = services.request("billing", "GET", "resource").status_code
    except Exception as exc:  # recorded, asserted on by the caller
        outcome = exc
    return start, time.monotonic(), outcome


def run_threads(count: int, work: Any, *, join_timeout: float) -> list[threading.Thread]:
    """Start ``count`` threads running ``work(index)``; join each within the bound and
    return those still alive (a hung call)."""
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threads if thread.is_alive()]
