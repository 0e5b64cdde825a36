"""Connection pools shared by every session of one integration.

An integration acting for 10,000 accounts has a session (its own provider, so its own
tokens: security.md #31) per account, but one remote: its sessions share one pool of
API connections and one token-endpoint session, so keep-alive connections are reused
from one account to the next instead of a TCP connection (and a pool) per call. The
service layer's cached sessions and a run of test calls (``testcalls.run_tests``) both
attach theirs here.

Pools are keyed by (slug, CA bundle, client certificate thumbprint): a certificate
replaced by another process gets a new pool instead of the old certificate's
(security.md #35). A forked child starts with none: it must not share its parent's
sockets, nor inherit a lock some parent thread held at the fork.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .auth import TokenAuth

if TYPE_CHECKING:
    import requests

    from .session import IntegrationSession

TransportKey = tuple[str, str, str]
# The API connection pool and the token-endpoint session of one key.
Shared = tuple["requests.adapters.BaseAdapter", "requests.Session"]


class Transports:
    def __init__(self) -> None:
        self._shared: dict[TransportKey, Shared] = {}
        self._lock = threading.Lock()

    def attach(self, session: IntegrationSession) -> None:
        """Mount the integration's shared API pool and token-endpoint session on
        ``session`` (the first session of a key lends its own)."""
        auth = session.auth
        assert isinstance(auth, TokenAuth)
        certificate = session.client_certificate
        integration = session.integration
        key = (
            integration.slug,
            integration.ca_bundle,
            certificate.thumbprint if certificate is not None else "",
        )
        with self._lock:
            shared = self._shared.get(key)
            if shared is None:
                # Only the first session's: reading auth.http builds its token session.
                shared = self._shared[key] = (session.get_adapter("https://"), auth.http)
            adapter, token_http = shared
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        auth.http = token_http

    def forget(self, slug: str) -> None:
        """Drop ``slug``'s pools (its settings changed): the next session lends new ones."""
        with self._lock:
            for key in [key for key in self._shared if key[0] == slug]:
                del self._shared[key]

    def clear(self) -> None:
        with self._lock:
            self._shared.clear()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._shared.clear()


transports = Transports()
os.register_at_fork(after_in_child=transports.after_fork_in_child)
