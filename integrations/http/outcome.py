"""What one call through an ``IntegrationSession`` came to: what the call log, test
calls and telemetry are told."""

from __future__ import annotations

import time

import requests


class Outcome:
    """One call's result: a response or the error that stopped it, and its duration."""

    __slots__ = ("method", "url", "response", "error", "duration_ms", "attempts")

    def __init__(
        self,
        method: str,
        url: str,
        started: float,
        *,
        response: requests.Response | None = None,
        error: BaseException | None = None,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.url = url
        self.response = response
        self.error = error
        self.attempts = attempts
        self.duration_ms = int((time.perf_counter() - started) * 1000)

    def __repr__(self) -> str:
        return f"<Outcome {self.method} status={self.status_code} attempts={self.attempts}>"

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None
