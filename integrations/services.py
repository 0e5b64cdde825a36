"""The Python API application code calls (SPEC: Python API).

Sessions are built once per process and integration and shared by its threads, so
connections are pooled and tokens reused. They are rebuilt when the integration changes:
a save in this process drops them at once (``signals``), and a change made by another
process (admin on another server, an import) is seen within SESSION_RECHECK seconds,
when the next call compares the row's ``updated_at`` and ``enabled`` with what its
session was built from. Calls in between cost no query.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from django.views.decorators.debug import sensitive_variables

from .audit import record_test
from .exceptions import IntegrationDisabled, IntegrationNotFound
from .http import IntegrationSession
from .http.session import Outcome
from .models import CallLog, CallSource, Integration
from .settings import app_settings


@dataclass
class _Built:
    session: IntegrationSession
    version: tuple[datetime, bool]
    checked: float


_sessions: dict[tuple[str, str], _Built] = {}
_sessions_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child must not share the parent's pooled sockets, nor inherit a lock
    some parent thread held at the fork."""
    global _sessions_lock
    _sessions_lock = threading.Lock()
    _sessions.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_sessions(slug: str) -> None:
    """Drop this process's sessions for ``slug``: the next call builds a new one."""
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
    built = _sessions.get((slug, source))
    now = time.monotonic()
    if built is not None:
        if now - built.checked < app_settings.SESSION_RECHECK:
            return built.session
        version = Integration.objects.filter(slug=slug).values_list("updated_at", "enabled").first()
        if version == built.version:
            built.checked = now
            return built.session
    integration = load_integration(slug)
    session = IntegrationSession(integration, source=source)
    with _sessions_lock:
        _sessions[(slug, source)] = _Built(
            session, (integration.updated_at, integration.enabled), now
        )
    return session


@sensitive_variables("path", "kwargs")
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
    return record_test(integration, source, outcome, ok=ok, error=error)


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
    outcome = session.perform(method, path, trial=True)
    ok = outcome.response is not None and (
        outcome.response.status_code in expected if expected else outcome.response.ok
    )
    error = ""
    if outcome.response is not None and not ok:
        error = f"unexpected status {outcome.response.status_code}"
        if expected:
            error += f" (expected {', '.join(map(str, expected))})"
    return outcome, ok, error
