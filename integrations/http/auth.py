"""Token auth as a requests ``AuthBase``: puts the cached token on each request and,
on a 401, replaces it once (security.md #13, #24).

With DPoP (RFC 9449) the provider puts ``Authorization: DPoP`` and a fresh proof on each
request; every answer's ``DPoP-Nonce`` is kept for its origin, and a 401 with
``WWW-Authenticate: DPoP error="use_dpop_nonce"`` is answered by one retry with the same
token and a proof carrying the nonce, never a loop (security.md #34)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase

from .. import telemetry
from ..tokens.base import Token, TokenProvider
from ..tokens.cache import token_cache
from ..tokens.sender import DPoPBinding

TOKEN_ATTR = "_integrations_token"
RETRIED_ATTR = "_integrations_retried"


class TokenAuth(AuthBase):
    def __init__(
        self,
        provider: TokenProvider,
        http: requests.Session | None = None,
        *,
        make_http: Callable[[], requests.Session] | None = None,
    ) -> None:
        """``http`` is the session token endpoints are called through (never the API
        session, whose auth would recurse); or ``make_http`` builds it on first use,
        so a session whose token session is replaced by a shared one
        (http/transport.py) never builds its own."""
        if http is None and make_http is None:
            raise TypeError("TokenAuth needs http or make_http")
        self.provider = provider
        self._http = http
        self._make_http = make_http
        # DPoP (RFC 9449): the provider's proof key and the servers' nonces, or None.
        binding = getattr(provider, "dpop", None)
        self.dpop = binding if isinstance(binding, DPoPBinding) else None

    @property
    def http(self) -> requests.Session:
        http = self._http
        if http is None:
            assert self._make_http is not None
            # Two threads may both build one: one is kept, the other used once.
            http = self._http = self._make_http()
        return http

    @http.setter
    def http(self, session: requests.Session) -> None:
        self._http = session

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token_for(request)
        self.provider.authorize(request, token)
        setattr(request, TOKEN_ATTR, token)
        # What register_hook does, minus its per-call isinstance check of the hook.
        request.hooks["response"].append(self.retry_on_401)
        return request

    def token_for(self, request: requests.PreparedRequest) -> Token:
        provider = self.provider
        if not provider.cacheable:
            return provider.obtain(self.http, request)
        return token_cache.get(provider.cache_key, self.fetch)

    def fetch(self) -> Token:
        """A new token on a cache miss; telemetry records it (a no-op without it)."""
        provider = self.provider
        obtain = provider.obtain
        return telemetry.obtain_token(provider.integration, lambda: obtain(self.http, None))

    def retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        # Every answer may bring the origin's next DPoP nonce; a 401 asking for one is
        # answered with the same token and a proof carrying it (security.md #34).
        wants_nonce = self.dpop is not None and self.dpop.observe(response)
        if response.status_code != 401 or getattr(request, RETRIED_ATTR, False):
            return response
        refused: Token | None = getattr(request, TOKEN_ATTR, None)
        if wants_nonce and refused is not None:
            return self.resend(response, refused, **kwargs)
        if self.provider.cacheable:
            token_cache.invalidate(self.provider.cache_key, refused)
        # The adapter has read the body within the size cap (or, when the caller
        # streams, close() drops the unread connection), so this stays bounded.
        response.close()
        retry = request.copy()
        setattr(retry, RETRIED_ATTR, True)
        token = self.token_for(retry)
        if refused is not None and token.value == refused.value:
            # Another thread refreshed to the same token already refused: mint anew.
            token_cache.invalidate(self.provider.cache_key, token)
            token = self.token_for(retry)
        return self.resend(response, token, retry, **kwargs)

    def resend(
        self,
        response: requests.Response,
        token: Token,
        retry: requests.PreparedRequest | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send the request once more with ``token`` (a fresh DPoP proof when DPoP is
        on); the retry is marked, so it is never retried again: one retry, not a loop."""
        response.close()
        if retry is None:
            retry = response.request.copy()
            setattr(retry, RETRIED_ATTR, True)
        self.provider.authorize(retry, token)
        setattr(retry, TOKEN_ATTR, token)
        connection = response.connection
        new_response: requests.Response = connection.send(retry, **kwargs)
        if self.dpop is not None:
            self.dpop.observe(new_response)  # hooks do not run for this send
        new_response.history.append(response)
        new_response.request = retry
        # setattr: Response declares no such attribute (mypy).
        setattr(new_response, "_integrations_attempts", 2)  # noqa: B010
        return new_response
