"""Token auth as a requests ``AuthBase``: puts the cached token on each request and,
on a 401, replaces it once (security.md #13, #24)."""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import AuthBase

from .. import telemetry
from ..tokens.base import Token, TokenProvider
from ..tokens.cache import token_cache

TOKEN_ATTR = "_integrations_token"
RETRIED_ATTR = "_integrations_retried"


class TokenAuth(AuthBase):
    def __init__(self, provider: TokenProvider, http: requests.Session) -> None:
        self.provider = provider
        # The session that token endpoints are called through (never the API session,
        # whose auth would recurse).
        self.http = http

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
        if response.status_code != 401 or getattr(request, RETRIED_ATTR, False):
            return response
        refused: Token | None = getattr(request, TOKEN_ATTR, None)
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
        self.provider.authorize(retry, token)
        setattr(retry, TOKEN_ATTR, token)
        connection = response.connection
        new_response: requests.Response = connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        # setattr: Response declares no such attribute (mypy).
        setattr(new_response, "_integrations_attempts", 2)  # noqa: B010
        return new_response
