"""When and how long to wait before trying a call again (security.md #18).

Idempotent methods are retried on connection errors, read timeouts and on
429/502/503/504, with
exponential backoff and jitter, and ``Retry-After`` honoured up to RETRY_AFTER_CAP
(urllib3 would wait up to 6 hours). POST and PATCH are retried only when the
integration names an idempotency header: one key is generated per call and sent on
every attempt, so the remote can tell a retry from a new request (stripe-python).
Retries never sleep past the call's deadline.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests

from ..settings import app_settings

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
KEYED_METHODS = frozenset({"POST", "PATCH"})

# Looked up at call time so tests can record the waits instead of sleeping.
sleep = time.sleep


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    total: int
    backoff: float
    retry_after_cap: float
    idempotency_header: str = ""

    @classmethod
    def from_settings(cls, idempotency_header: str = "") -> RetryPolicy:
        return cls(
            total=app_settings.RETRY_TOTAL,
            backoff=app_settings.RETRY_BACKOFF,
            retry_after_cap=app_settings.RETRY_AFTER_CAP,
            idempotency_header=idempotency_header,
        )

    def allows(self, method: str) -> bool:
        """Whether calls with this method may be retried at all."""
        if method in IDEMPOTENT_METHODS:
            return True
        return bool(self.idempotency_header) and method in KEYED_METHODS

    def needs_key(self, method: str) -> bool:
        return bool(self.idempotency_header) and method in KEYED_METHODS

    def delay(self, attempt: int, response: requests.Response | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After", ""))
            if retry_after is not None:
                return min(retry_after, self.retry_after_cap)
        # "Equal jitter": half the exponential step, plus up to as much again at random,
        # so many clients that failed together do not come back together.
        step = min(float(self.backoff) * 2.0 ** (attempt - 1), float(self.retry_after_cap))
        return step / 2 + random.uniform(0, step / 2)


def parse_retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
