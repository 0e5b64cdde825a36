"""The token cache: reuse tokens until a margin before expiry, refresh once.

Two levels. A process-local dict answers the hot path with no I/O. Behind it, Django's
cache (``CACHE_URL``; Redis in production) shares tokens between processes, stored
AES-GCM encrypted under the storage key ring with the cache key as associated data, so
a cache dump reveals no token and an entry cannot be moved to another key.

Refreshes are single-flight: one lock per key in the process (SECURITY 22), and across
processes a ``cache.add`` lock (Redis ``SET NX`` with a TTL) that is re-checked after
it is taken (SECURITY 23), so N processes hitting a cold integration cause one token
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
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from django.core.cache import cache

from ..crypto import keyring
from ..exceptions import IntegrationError, TokenError
from ..settings import app_settings
from .base import Token

POLL_INTERVAL = 0.05
# Freshness is judged by this clock; tests move it to make tokens expire.
clock: Callable[[], float] = time.time


class TokenCache:
    def __init__(self) -> None:
        self._local: OrderedDict[str, Token] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

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
                token = self._shared(key, obtain, margin)
                self._local[key] = token
                self._forget_older_versions(key)
                self._evict()
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
        prefix = key.rsplit(":", 1)[0] + ":"
        for other in [k for k in list(self._local) if k.startswith(prefix) and k != key]:
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
                    cache.delete(key)

    def clear(self) -> None:
        """Forget this process's tokens (the shared cache is left alone)."""
        self._local.clear()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _shared(self, key: str, obtain: Callable[[], Token], margin: float) -> Token:
        token = self._read_shared(key)
        if token is not None and token.fresh(margin, clock()):
            return token
        lock_key = f"{key}:lock"
        owner = uuid.uuid4().hex
        lock_ttl = app_settings.TOKEN_LOCK_TIMEOUT
        # Longer than the lock's TTL: a dead holder's lock expires before we give up.
        deadline = time.monotonic() + 2 * lock_ttl + 1
        while not cache.add(lock_key, owner, timeout=lock_ttl):
            # Another process is refreshing: wait for its token, or for its lock to
            # expire if it died, then take the lock ourselves.
            time.sleep(POLL_INTERVAL)
            token = self._read_shared(key)
            if token is not None and token.fresh(margin, clock()):
                return token
            if time.monotonic() > deadline:
                raise TokenError("timed out waiting for another process to refresh a token")
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
            if cache.get(lock_key) == owner:
                cache.delete(lock_key)

    def _read_shared(self, key: str) -> Token | None:
        sealed = cache.get(key)
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
        cache.set(key, keyring().encrypt(json.dumps(data), key.encode()), timeout=ttl)


token_cache = TokenCache()
