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
import functools
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import requests
from django.views.decorators.debug import sensitive_variables

from . import testcalls
from .accounts import build_account_provider
from .calllog import log_call, lost_rows
from .exceptions import AccountDisabled, AccountNotFound, IntegrationDisabled, IntegrationNotFound
from .http import IntegrationSession
from .http.transport import transports
from .models import Account, CallLog, CallSource, Integration
from .settings import app_settings
from .tokens.cache import token_cache
from .tokens.presets.github import app_jwts
from .tokens.registry import build_provider


@dataclass
class _Built:
    session: IntegrationSession
    version: tuple[Any, ...]
    checked: float


# Sessions by (slug, account key or "", source), least recently used first. Account
# sessions share their integration's transport (http/transport.py: one connection pool
# and token-endpoint session for every account and source), so a session costs no
# sockets of its own, and the bound keeps 10,000 accounts from keeping 10,000 sessions.
_sessions: OrderedDict[tuple[str, str, str], _Built] = OrderedDict()
MAX_SESSIONS = 1024
_sessions_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child must not inherit a lock some parent thread held at the fork
    (http/transport.py drops the parent's pooled sockets itself)."""
    global _sessions_lock
    _sessions_lock = threading.Lock()
    _sessions.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_sessions(slug: str, account: str | None = None) -> None:
    """Drop this process's sessions for ``slug`` (only ``account``'s when given): the
    next call builds a new one."""
    with _sessions_lock:
        for key in [k for k in _sessions if k[0] == slug and account in (None, k[1])]:
            del _sessions[key]
    if account is None:
        transports.forget(slug)


def forget_account_sessions(integration_id: int, key: str) -> None:
    """Drop this process's sessions for one account (after it was saved or deleted);
    its integration's other accounts keep theirs. No query."""
    with _sessions_lock:
        for cache_key in [
            k
            for k, built in _sessions.items()
            if k[1] == key and built.session.integration.pk == integration_id
        ]:
            del _sessions[cache_key]


def load_integration(slug: str) -> Integration:
    """The enabled integration ``slug``; raises IntegrationNotFound or IntegrationDisabled."""
    try:
        integration = Integration.objects.get(slug=slug)
    except Integration.DoesNotExist:
        raise IntegrationNotFound(f"no integration with slug {slug!r}") from None
    if not integration.enabled:
        raise IntegrationDisabled(f"integration {slug!r} is disabled")
    return integration


def find_account(integration: Integration, key: str) -> Account:
    """The account ``key`` of ``integration``, enabled or not; raises AccountNotFound."""
    account = Account.objects.filter(integration=integration, key=key).first()
    if account is None:
        raise AccountNotFound(f"integration {integration.slug!r} has no account {key!r}")
    account.integration = integration  # no query to reach it again
    return account


def load_account(integration: Integration, key: str) -> Account:
    """The enabled account ``key``; raises AccountNotFound or AccountDisabled."""
    account = find_account(integration, key)
    if not account.enabled:
        raise AccountDisabled(f"account {key!r} of integration {integration.slug!r} is disabled")
    return account


def _version(slug: str, key: str) -> tuple[Any, ...] | None:
    """What a session was built from: the rows' ``updated_at`` and ``enabled``."""
    if not key:
        return Integration.objects.filter(slug=slug).values_list("updated_at", "enabled").first()
    return (
        Account.objects.filter(integration__slug=slug, key=key)
        .values_list("integration__updated_at", "integration__enabled", "updated_at", "enabled")
        .first()
    )


def account_key(account: str | Account | None) -> str:
    return account.key if isinstance(account, Account) else (account or "")


def get_session(
    slug: str, account: str | Account | None = None, *, source: str = CallSource.API
) -> IntegrationSession:
    """A ready ``requests.Session`` for ``slug`` (acting for ``account``, a key, when
    given): JWT auth attached, paths relative to ``base_url``, shared between threads and
    reused until the integration or the account changes. Raises IntegrationNotFound,
    IntegrationDisabled, AccountNotFound, AccountDisabled."""
    key = account_key(account)
    cache_key = (slug, key, source)
    built = _sessions.get(cache_key)
    now = time.monotonic()
    if built is not None:
        if now - built.checked < app_settings.SESSION_RECHECK:
            return built.session
        if _version(slug, key) == built.version:
            built.checked = now
            with _sessions_lock:
                if cache_key in _sessions:
                    _sessions.move_to_end(cache_key)
            return built.session
    integration = load_integration(slug)
    version: tuple[Any, ...] = (integration.updated_at, integration.enabled)
    found = None
    if key:
        found = load_account(integration, key)
        version += (found.updated_at, found.enabled)
    session = build_session(integration, found, source=source)
    with _sessions_lock:
        _sessions[cache_key] = _Built(session, version, now)
        _sessions.move_to_end(cache_key)
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return session


def build_session(
    integration: Integration, account: Account | None, *, source: str
) -> IntegrationSession:
    """A new session for the integration (for ``account``: its own provider, so its own
    tokens, security.md #31), on the integration's shared transport."""
    if account is None:
        provider = build_provider(integration)
        on_call: Any = log_call
    else:
        provider = build_account_provider(integration, account.key, account.options)
        on_call = functools.partial(log_call, account=account)
    session = IntegrationSession(integration, provider, source=source, on_call=on_call)
    transports.attach(session)
    return session


@sensitive_variables("path", "kwargs")
def request(
    slug: str, method: str, path: str, *, account: str | Account | None = None, **kwargs: Any
) -> requests.Response:
    """One call through the integration's session (for ``account`` when given), logged
    as its ``log_calls`` says."""
    return get_session(slug, account).request(method, path, **kwargs)


def run_test(
    slug: str, *, account: str | Account | None = None, source: str = CallSource.API
) -> CallLog:
    """Fire the integration's test request (for ``account`` when given) and log it (test
    calls are always logged). An unknown account raises AccountNotFound; a disabled one
    is a failed, logged test call, as a disabled integration is."""
    integration = Integration.objects.filter(slug=slug).first()
    if integration is None:
        raise IntegrationNotFound(f"no integration with slug {slug!r}")
    key = account_key(account)
    found = find_account(integration, key) if key else None
    session = None
    if integration.enabled and (found is None or found.enabled):
        # A session that cannot be built is the test call's failure: testcalls builds
        # it again and logs why.
        with contextlib.suppress(Exception):
            session = get_session(slug, key or None, source=source)
    result = testcalls.run_test(integration, source=source, session=session, account=found)
    assert result.row is not None
    return result.row


def reset() -> None:
    """Forget this process's sessions (and with them their circuit breakers), cached
    tokens and app JWTs, and the call log's lost-row report: a test helper, so each test starts as a
    fresh process would."""
    with _sessions_lock:
        _sessions.clear()
    transports.clear()
    token_cache.clear()
    app_jwts.clear()
    lost_rows.reset()
