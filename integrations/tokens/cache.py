"""The token cache: reuse tokens until a margin before expiry, refresh once.

Two levels. A process-local dict answers the hot path with no I/O. Behind it, Django's
cache (``CACHE_URL``; Redis in production) shares tokens between processes, stored
AES-GCM encrypted under the storage key ring with the cache key as associated data, so
a cache dump reveals no token and an entry cannot be moved to another key.

Refreshes are single-flight: one lock per key in the process (security.md #22), and across
processes a ``cache.add`` lock (Redis ``SET NX`` with a TTL) that is re-checked after
it is taken (security.md #23), so N processes hitting a cold integration cause one token
request. A holder that dies leaves a lock that expires after TOKEN_LOCK_TIMEOUT, and
the waiters take over. With a local-memory cache this degrades to one refresh per
process.

Keys carry ``Integration.auth_fingerprint``, so an edit of the key or claims is a new
key: the next call mints with the new settings at once. An account's provider keys its
tokens by the account too (``accounts.AccountScope``: ``billing[acme]``), so a token is
never served to another account and an edit of one account drops only its tokens
(security.md #31).

The local dict is bounded (``INTEGRATIONS_TOKEN_CACHE_SIZE``): the least recently used
token is evicted first, and it is still in the shared cache for the next caller.

A shared cache that fails (Redis stopped or unreachable) never fails a call: any error
of the cache backend makes the refresh go on under the process lock alone (one refresh
per process, security.md #22-#23), and the shared cache is skipped for
SHARED_RETRY_AFTER seconds, so an outage costs each process one error, logged once,
not one per call. Give the cache short socket timeouts (``socket_connect_timeout`` and
``socket_timeout`` in its OPTIONS, e.g. ``redis://host:6379/1?socket_timeout=0.5&
socket_connect_timeout=0.5``): redis-py waits forever by default on an unanswering
server, which would hold calls past their deadline.

A token endpoint that is down (unreachable, 429 or 5xx) is backed off per key: after a
failure, callers get a copy of that error at once, without a request of their own,
until a wait doubling from INTEGRATIONS_RETRY_BACKOFF (with jitter, capped at
INTEGRATIONS_RETRY_AFTER_CAP) has passed; then one caller tries again. With the
single-flight lock this keeps an outage to one token request in flight per key, spaced
out, however many threads call (docs/service.md, "When a token endpoint fails").
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

from ..crypto import keyring
from ..exceptions import (
    IntegrationError,
    TokenEndpointError,
    TokenEndpointUnreachable,
    TokenError,
)
from ..settings import app_settings
from .base import Token

POLL_INTERVAL = 0.05
# After a shared-cache error, tokens are kept in this process only for this long.
SHARED_RETRY_AFTER = 2.0
logger = logging.getLogger("integrations.tokens")
# Freshness is judged by this clock; tests move it to make tokens expire.
clock: Callable[[], float] = time.time


class TokenCache:
    def __init__(self) -> None:
        self._local: OrderedDict[str, Token] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Each key's prefix (integration or account, without the fingerprint) -> the
        # key cached for it: an older version is found without scanning every key.
        self._versions: dict[str, str] = {}
        # After a shared-cache error: skip it until this time.monotonic(); one warning.
        self._shared_retry_at = 0.0
        self._shared_failing = False
        # Per key: (the endpoint's last error, failures in a row, next try, monotonic).
        self._failures: dict[str, tuple[Exception, int, float]] = {}

    def get(self, key: str, obtain: Callable[[], Token]) -> Token:
        """A fresh token for ``key``, calling ``obtain`` only when none is cached."""
        margin = app_settings.TOKEN_REFRESH_MARGIN
        token = self._local.get(key)
        if token is not None and token.fresh(margin, clock()):
            try:
                self._local.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a valid token
                pass
            return token
        with self._lock(key):
            # Re-check: the thread that held the lock may have refreshed it already.
            token = self._local.get(key)
            if token is None or not token.fresh(margin, clock()):
                token = self._shared_backed_off(key, obtain, margin)
                self._local[key] = token
                self._forget_older_versions(key)
                self._evict()
            return token

    def _shared_backed_off(self, key: str, obtain: Callable[[], Token], margin: float) -> Token:
        """``_shared``, unless the token endpoint failed for this key less than its
        backoff ago: then a copy of that failure, without asking again."""
        failed = self._failures.get(key)
        if failed is not None and time.monotonic() < failed[2]:
            raise copy.copy(failed[0]) from None
        try:
            token = self._shared(key, obtain, margin)
        except (TokenEndpointError, TokenEndpointUnreachable) as exc:
            if isinstance(exc, TokenEndpointError) and not endpoint_unwell(exc.status_code):
                raise  # a refusal of this request: the next one may differ
            count = failed[1] + 1 if failed is not None else 1
            wait = min(app_settings.RETRY_BACKOFF * 2 ** (count - 1), app_settings.RETRY_AFTER_CAP)
            self._failures[key] = (exc, count, time.monotonic() + random.uniform(0.5, 1) * wait)
            while len(self._failures) > max(1, int(app_settings.TOKEN_CACHE_SIZE)):
                self._failures.pop(next(iter(self._failures)))
            raise
        self._failures.pop(key, None)
        return token

    def _evict(self) -> None:
        """Keep at most TOKEN_CACHE_SIZE tokens, dropping the least recently used (and
        their locks, unless a refresh holds one)."""
        size = max(1, int(app_settings.TOKEN_CACHE_SIZE))
        with self._locks_guard:
            while len(self._local) > size:
                try:
                    old, _ = self._local.popitem(last=False)
                except KeyError:
                    return
                lock = self._locks.get(old)
                if lock is not None and not lock.locked():
                    del self._locks[old]

    def _forget_older_versions(self, key: str) -> None:
        """Drop tokens and locks of the same integration under older fingerprints: after
        an edit or a storage-key rotation they are never asked for again."""
        prefix = key.rsplit(":", 1)[0]
        other = self._versions.pop(prefix, None)
        self._versions[prefix] = key  # (re)inserted last: the oldest prefixes go first
        while len(self._versions) > max(1, int(app_settings.TOKEN_CACHE_SIZE)):
            try:
                self._versions.pop(next(iter(self._versions)), None)
            except (StopIteration, RuntimeError):  # emptied or changed by another thread
                break
        if other is not None and other != key:
            self._local.pop(other, None)
            with self._locks_guard:
                self._locks.pop(other, None)

    def invalidate(self, key: str, token: Token | None = None) -> None:
        """Drop ``token`` (or whatever is cached) so the next ``get`` obtains anew.

        Given the token the remote refused, only that token is dropped: when another
        thread or process already replaced it, the replacement stays.
        """
        with self._lock(key):
            current = self._local.get(key)
            if token is None or current is None or current.value == token.value:
                self._local.pop(key, None)
                shared = self._read_shared(key)
                if token is None or shared is None or shared.value == token.value:
                    try:
                        self._backend("delete", key)
                    except SharedCacheDown:
                        pass  # expires with its TTL; this process will not serve it

    def clear(self) -> None:
        """Forget this process's tokens and backoffs (the shared cache is left alone)."""
        self._local.clear()
        self._versions.clear()
        self._failures.clear()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _backend(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """``cache.<operation>(...)``; SharedCacheDown if the backend fails or failed
        less than SHARED_RETRY_AFTER seconds ago (the caller goes on locally)."""
        if time.monotonic() < self._shared_retry_at:
            raise SharedCacheDown
        try:
            result = getattr(cache, operation)(*args, **kwargs)
        except Exception as exc:  # each backend has its own errors (redis, pymemcache...)
            self._shared_retry_at = time.monotonic() + SHARED_RETRY_AFTER
            if not self._shared_failing:
                self._shared_failing = True
                logger.warning(
                    "shared token cache unavailable (%s): tokens kept per process, retried "
                    "every %s s",
                    type(exc).__name__,
                    SHARED_RETRY_AFTER,
                )
            raise SharedCacheDown from None
        if self._shared_failing:
            self._shared_failing = False
            logger.warning("shared token cache reachable again: tokens are shared")
        return result

    def _shared(self, key: str, obtain: Callable[[], Token], margin: float) -> Token:
        try:
            found = self._take_shared_lock(key, margin)
        except SharedCacheDown:
            return obtain()  # single-flight in this process only: our lock is held
        if isinstance(found, Token):
            return found
        try:
            token = self._read_shared(key)
            if token is not None and token.fresh(margin, clock()):
                return token
            token = obtain()
            self._write_shared(key, token, margin)
            return token
        finally:
            # Not atomic: a lock that expired mid-refresh and was taken by another
            # process could be deleted here, costing at worst one extra refresh.
            try:
                if self._backend("get", f"{key}:lock") == found:
                    self._backend("delete", f"{key}:lock")
            except SharedCacheDown:
                pass  # its TTL removes it

    def _take_shared_lock(self, key: str, margin: float) -> Token | str:
        """A fresh token another process shared, or the owner id of the lock taken."""
        token = self._read_shared(key)
        if token is not None and token.fresh(margin, clock()):
            return token
        lock_key = f"{key}:lock"
        owner = uuid.uuid4().hex
        lock_ttl = app_settings.TOKEN_LOCK_TIMEOUT
        # Longer than the lock's TTL: a dead holder's lock expires before we give up.
        deadline = time.monotonic() + 2 * lock_ttl + 1
        while not self._backend("add", lock_key, owner, timeout=lock_ttl):
            # Another process is refreshing: wait for its token, or for its lock to
            # expire if it died, then take the lock ourselves.
            time.sleep(POLL_INTERVAL)
            token = self._read_shared(key)
            if token is not None and token.fresh(margin, clock()):
                return token
            if time.monotonic() > deadline:
                raise TokenError("timed out waiting for another process to refresh a token")
        return owner

    def _read_shared(self, key: str) -> Token | None:
        """The token another process shared; None on a miss or a failing cache."""
        try:
            sealed = self._backend("get", key)
        except SharedCacheDown:
            return None
        if not isinstance(sealed, str):
            return None
        try:
            data = json.loads(keyring().decrypt(sealed, key.encode()))
            return Token(
                data["value"],
                data["expires_at"],
                data.get("kid", ""),
                data.get("jti", ""),
                data.get("obtained_at", data["expires_at"]),
            )
        except (IntegrationError, ValueError, KeyError, TypeError):
            return None  # undecryptable (storage key rotated away) or foreign: a miss

    def _write_shared(self, key: str, token: Token, margin: float) -> None:
        ttl = int(
            token.expires_at - clock() - min(margin, (token.expires_at - token.obtained_at) / 2)
        )
        if ttl <= 0:
            return
        data = {
            "value": token.value,
            "expires_at": token.expires_at,
            "obtained_at": token.obtained_at,
            "kid": token.kid,
            "jti": token.jti,
        }
        sealed = keyring().encrypt(json.dumps(data), key.encode())
        try:
            self._backend("set", key, sealed, timeout=ttl)
        except SharedCacheDown:
            pass  # kept in this process; shared again by the next refresh that can


def endpoint_unwell(status: int | None) -> bool:
    """A token endpoint answer that says the server is unwell, not the request wrong."""
    return status is not None and (status == 429 or status >= 500)


class SharedCacheDown(Exception):
    """The shared cache failed just now or lately: go on with this process's cache."""


token_cache = TokenCache()
