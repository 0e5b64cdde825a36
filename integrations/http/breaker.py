"""An optional circuit breaker per integration (security.md #19).

After ``CIRCUIT_FAILURES`` calls in a row fail (no response, a timeout, a token that
could not be obtained, or a 429/5xx after retries), calls fail fast with
``CircuitOpen`` for ``CIRCUIT_RESET`` seconds instead of waiting on a remote that is
down. Then one call is let through as a trial: its success closes the circuit, its
failure opens it again. A test call (admin, command, task) is always let through and
counts as that trial, so an operator can check a fix at once.

The state lives in the session, so it is per process, and an edit of the integration
(a new session) closes it.
"""

from __future__ import annotations

import threading
import time

import requests

from ..exceptions import CircuitOpen, TokenError

FAILING_STATUSES = frozenset({429, 500, 502, 503, 504})
# Looked up at call time so tests can move time on instead of sleeping.
clock = time.monotonic


# Errors that say the remote (or its token endpoint) is unreachable or unwell. Others
# say the request itself was wrong (requests' InvalidURL, InvalidHeader, ...; a refused
# address; a 4xx other than 429): those are the caller's business and must not shut
# the integration off for everyone.
REMOTE_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    TokenError,
)


def is_failure(response: requests.Response | None, error: BaseException | None) -> bool:
    """Whether a call's outcome says the remote is unwell."""
    if error is not None:
        return isinstance(error, REMOTE_ERRORS)
    return response is not None and response.status_code in FAILING_STATUSES


class CircuitBreaker:
    def __init__(self, failures: int, reset_after: float) -> None:
        self.threshold = failures
        self.reset_after = reset_after
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._trial = False

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self._failures}>"

    @property
    def state(self) -> str:
        if self._failures < self.threshold:
            return "closed"
        if self._trial or clock() >= self._opened_at + self.reset_after:
            return "half-open"
        return "open"

    def allow(self, name: str, *, trial: bool = False) -> None:
        """Let the call through, or raise CircuitOpen. ``trial`` forces a trial call."""
        if self._failures < self.threshold:
            return  # closed: no lock on the common path
        with self._lock:
            if self._failures < self.threshold:
                return
            if not trial:
                wait = self._opened_at + self.reset_after - clock()
                if wait > 0:
                    raise CircuitOpen(
                        f"{name}: circuit open after {self._failures} failed calls in a "
                        f"row; failing fast for another {wait:.0f} s"
                    )
                if self._trial:
                    raise CircuitOpen(f"{name}: circuit half-open; a trial call is running")
            self._trial = True

    def record(self, failed: bool) -> None:
        """Count the outcome of a call that ``allow`` let through."""
        if not failed and self._failures == 0:
            return
        with self._lock:
            self._trial = False
            if not failed:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = clock()
