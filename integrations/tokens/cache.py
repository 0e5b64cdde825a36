"""The token cache: reuse tokens until a margin before expiry, refresh once.

Two levels. A process-local dict answers the hot path with no I/O. Behind it, Django's
cache (``CACHE_URL``; Redis in production) shares tokens between processes, stored
AES-GCM encrypted under the storage key ring, so a cache dump reveals no token.

Refreshes are single-flight: one lock per key in the process (SECURITY 22), and across
processes a ``cache.add`` lock with a TTL, re-checked after it is taken (SECURITY 23), so
N processes hitting a cold integration cause one token request. A holder that dies
leaves a lock that expires after TOKEN_LOCK_TIMEOUT. With a local-memory cache this
degrades to one refresh per process.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

from django.core.cache import cache

from ..conf import app_settings
from ..crypto import keyring
from ..exceptions import IntegrationError
from .base import Token

POLL_INTERVAL = 0.05


class TokenCache:
    def __init__(self) -> None:
        self._local: dict[str, Token] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def get(self, key: str, obtain: Callable[[], Token]) -> Token:
        """A fresh token for ``key``, calling ``obtain`` only when none is cached."""
        token = self._local.get(key)
        margin = app_settings.TOKEN_REFRESH_MARGIN
        if token is not None and token.fresh(margin):
            return token
        with self._lock(key):
            token = self._local.get(key)
            if token is None or not token.fresh(margin):
                token = self._shared(key, obtain, margin)
                self._local[key] = token
            return token

    def invalidate(self, key: str, token: Token | None = None) -> None:
        """Drop ``token`` (or whatever is cached) so the next ``get`` obtains anew.

        Given the token the remote refused, only that token is dropped: when another
        thread already replaced it, the replacement stays.
        """
        with self._lock(key):
            current = self._local.get(key)
            if token is None or current is None or current.value == token.value:
                self._local.pop(key, None)
                shared = self._read_shared(key)
                if token is None or shared is None or shared.value == token.value:
                    cache.delete(key)

    def clear(self) -> None:
        self._local.clear()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _shared(self, key: str, obtain: Callable[[], Token], margin: float) -> Token:
        token = self._read_shared(key)
        if token is not None and token.fresh(margin):
            return token
        lock_key = f"{key}:lock"
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + app_settings.TOKEN_LOCK_TIMEOUT
        while not cache.add(lock_key, owner, timeout=app_settings.TOKEN_LOCK_TIMEOUT):
            # Another process is refreshing: wait for its token, or for its lock to
            # expire if it died, then try again.
            time.sleep(POLL_INTERVAL)
            token = self._read_shared(key)
            if token is not None and token.fresh(margin):
                return token
            if time.monotonic() > deadline:
                raise IntegrationError("timed out waiting for another process to refresh a token")
        try:
            token = self._read_shared(key)
            if token is not None and token.fresh(margin):
                return token
            token = obtain()
            self._write_shared(key, token, margin)
            return token
        finally:
            if cache.get(lock_key) == owner:
                cache.delete(lock_key)

    def _read_shared(self, key: str) -> Token | None:
        sealed = cache.get(key)
        if not isinstance(sealed, str):
            return None
        try:
            data = json.loads(keyring().decrypt(sealed, key.encode()))
        except (IntegrationError, ValueError):
            return None  # undecryptable (key rotated away): treat as a miss
        return Token(data["value"], data["expires_at"], data.get("kid", ""), data.get("jti", ""))

    def _write_shared(self, key: str, token: Token, margin: float) -> None:
        ttl = int(token.expires_at - time.time() - margin)
        if ttl <= 0:
            return
        data = {"value": token.value, "expires_at": token.expires_at, "kid": token.kid, "jti": token.jti}
        cache.set(key, keyring().encrypt(json.dumps(data), key.encode()), timeout=ttl)


tokens = TokenCache()
