"""The Python API application code calls (docs/reference.md, Python API).

Sessions are built once per process and integration and shared by its threads, so
connections are pooled and tokens reused. They are rebuilt when the integration changes:
a save in this process drops them at once (``receivers``), and a change made by another
process (admin on another server, an import) is seen within SESSION_RECHECK seconds,
when the next call compares the row's ``updated_at`` and ``enabled`` with what its
session was built from. Calls in between cost no query.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from django.views.decorators.debug import sensitive_variables

from . import testcalls
from .calllog import log_call
from .exceptions import IntegrationDisabled, IntegrationNotFound
from .http import IntegrationSession
from .models import CallLog, CallSource, Integration
from .settings import app_settings
from .tokens.cache import token_cache
from .tokens.registry import build_provider


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
    session = IntegrationSession(
        integration, build_provider(integration), source=source, on_call=log_call
    )
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
    session = None
    if integration.enabled:
        # A session that cannot be built is the test call's failure: testcalls builds
        # it again and logs why.
        with contextlib.suppress(Exception):
            session = get_session(slug, source=source)
    result = testcalls.run_test(integration, source=source, session=session)
    assert result.row is not None
    return result.row


def reset() -> None:
    """Forget this process's sessions (and with them their circuit breakers) and cached
    tokens: a test helper, so each test starts as a fresh process would."""
    with _sessions_lock:
        _sessions.clear()
    token_cache.clear()


def run_test_for(integration: Integration, *, source: str) -> CallLog:
    """Transition only, until admin/ uses ``testcalls.run_test``: to be removed."""
    row = testcalls.run_test(integration, source=source).row
    assert row is not None
    return row
