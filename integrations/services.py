"""The Python API application code calls (SPEC: Python API).

Sessions are built once per process and integration, and rebuilt when the integration
changes: a save bumps a generation number in Django's cache (shared by processes when
``CACHE_URL`` is Redis), which each call compares with the one its session was built
at.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import requests
from django.core.cache import cache

from .audit import record_call
from .exceptions import IntegrationDisabled, IntegrationNotFound
from .http import IntegrationSession
from .http.session import Outcome
from .models import CallLog, CallSource, Integration

_sessions: dict[tuple[str, str], tuple[str, IntegrationSession]] = {}
_sessions_lock = threading.Lock()


def generation_key(slug: str) -> str:
    return f"integrations:generation:{slug}"


def bump_generation(slug: str) -> None:
    """Mark ``slug`` changed: every process rebuilds its session on the next call."""
    cache.set(generation_key(slug), uuid.uuid4().hex, timeout=None)
    with _sessions_lock:
        for key in [key for key in _sessions if key[0] == slug]:
            del _sessions[key]


def load_integration(slug: str) -> Integration:
    """The enabled integration ``slug``; raises IntegrationNotFound or IntegrationDisabled."""
    try:
        integration = Integration.objects.get(slug=slug)
    except Integration.DoesNotExist:
        raise IntegrationNotFound(f"no integration with slug {slug!r}") from None
    if not integration.enabled:
        raise IntegrationDisabled(f"integration {slug!r} is disabled")
    return integration


def get_session(slug: str, *, source: str = CallSource.API) -> IntegrationSession:
    """A ready ``requests.Session`` for ``slug``: JWT auth attached, paths relative to
    ``base_url``, shared between threads and reused until the integration changes."""
    generation = cache.get(generation_key(slug)) or ""
    entry = _sessions.get((slug, source))
    if entry is not None and entry[0] == generation:
        return entry[1]
    session = IntegrationSession(load_integration(slug), source=source)
    with _sessions_lock:
        _sessions[(slug, source)] = (generation, session)
    return session


def request(slug: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """One call through the integration's session, logged as its ``log_calls`` says."""
    return get_session(slug).request(method, path, **kwargs)


def run_test(slug: str, *, source: str = CallSource.API) -> CallLog:
    """Fire the integration's test request and log it (test calls are always logged)."""
    integration = Integration.objects.filter(slug=slug).first()
    if integration is None:
        raise IntegrationNotFound(f"no integration with slug {slug!r}")
    return run_test_for(integration, source=source)


def run_test_for(integration: Integration, *, source: str) -> CallLog:
    outcome, ok, error = perform_test(integration, source=source)
    row = record_call(integration, source, outcome, ok=ok, is_test=True, error=error)
    assert row is not None
    return row


def perform_test(
    integration: Integration, *, source: str, cached: bool = True
) -> tuple[Outcome, bool, str]:
    """Fire the test request without logging it: (outcome, ok, error).

    ``cached=False`` builds the session from ``integration`` itself, touching no
    database, so many can run on threads while one thread writes the log rows
    (integrations.runner).
    """
    test = integration.test_request or {}
    method = str(test.get("method", "GET")).upper()
    path = str(test.get("path", ""))
    expected = test.get("expect_status") or []
    if not integration.enabled:
        return Outcome(method, integration.base_url, time.perf_counter()), False, "disabled"
    try:
        if cached:
            session = get_session(integration.slug, source=source)
        else:
            session = IntegrationSession(integration, source=source)
    except Exception as exc:
        return Outcome(method, integration.base_url, time.perf_counter(), error=exc), False, ""
    outcome = session.perform(method, path)
    ok = outcome.response is not None and (
        outcome.response.status_code in expected if expected else outcome.response.ok
    )
    error = ""
    if outcome.response is not None and not ok:
        error = f"unexpected status {outcome.response.status_code}"
        if expected:
            error += f" (expected {', '.join(map(str, expected))})"
    return outcome, ok, error
