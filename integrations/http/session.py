"""The session factory: every outbound request of the app goes through here.

``IntegrationSession`` is a ``requests.Session`` bound to one integration: paths are
appended to its ``base_url``, its token auth is attached, ``trust_env`` is off (a
``~/.netrc`` or proxy variable must not replace the JWT or route around the address
guard; SECURITY 13), and every call is logged as the integration's ``log_calls`` says.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..conf import app_settings
from ..exceptions import RequestRefused

if TYPE_CHECKING:
    from ..models import Integration


def join_url(base_url: str, path: str) -> str:
    """Append ``path`` to ``base_url`` with exactly one slash (SPEC: never RFC 3986's
    join, which would drop ``/api/v3``)."""
    if not path:
        return base_url
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def create_session(*, pool_maxsize: int | None = None) -> requests.Session:
    """A plain session with the app's defaults: for token endpoints and the API alike."""
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = app_settings.USER_AGENT
    size = pool_maxsize or app_settings.POOL_MAXSIZE
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, pool_block=True, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class IntegrationSession(requests.Session):
    """A session bound to one integration; safe to share between threads."""

    def __init__(self, integration: Integration, *, source: str = "api") -> None:
        from ..validation import build_provider
        from .auth import TokenAuth

        super().__init__()
        self.trust_env = False
        self.integration = integration
        self.source = source
        self.base_url = integration.base_url
        self.headers["User-Agent"] = app_settings.USER_AGENT
        self.headers.update(integration.headers or {})
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=app_settings.POOL_MAXSIZE,
            pool_block=True,
            max_retries=0,
        )
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.provider = build_provider(integration)
        self.auth = TokenAuth(self.provider, create_session())
        self.timeout = (app_settings.CONNECT_TIMEOUT, integration.timeout)
        self._host = urlsplit(self.base_url).netloc

    def __repr__(self) -> str:
        return f"<IntegrationSession {self.integration.slug!r}>"

    def resolve(self, url: str) -> str:
        """Absolute URL for ``url``; refuses another host so credentials stay home."""
        if "://" in url:
            if urlsplit(url).netloc != self._host:
                raise RequestRefused(
                    f"{self.integration.slug}: absolute URL to another host refused; "
                    "pass a path relative to base_url"
                )
            return url
        return join_url(self.base_url, url)

    def perform(self, method: str, url: str, **kwargs: Any) -> Outcome:
        """Make the call and return what happened, response or error; logs nothing."""
        method = method.upper()
        started = time.perf_counter()
        full_url = url
        try:
            full_url = self.resolve(url)
            kwargs.setdefault("timeout", self.timeout)
            kwargs.setdefault("allow_redirects", self.integration.follow_redirects)
            response = super().request(method, full_url, **kwargs)
        except Exception as exc:  # returned, not swallowed: request() re-raises it
            return Outcome(method, full_url, started, error=exc)
        return Outcome(method, full_url, started, response=response)

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        from ..audit import record_call

        if args:
            raise TypeError("pass request options as keyword arguments")
        outcome = self.perform(method, url.decode() if isinstance(url, bytes) else url, **kwargs)
        record_call(self.integration, self.source, outcome)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.response is not None
        return outcome.response


class Outcome:
    """One call's result: a response or the error that stopped it, and its duration."""

    __slots__ = ("method", "url", "response", "error", "duration_ms")

    def __init__(
        self,
        method: str,
        url: str,
        started: float,
        *,
        response: requests.Response | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.response = response
        self.error = error
        self.duration_ms = int((time.perf_counter() - started) * 1000)

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def attempts(self) -> int:
        if self.response is None:
            return 1
        return int(getattr(self.response, "_integrations_attempts", 1))
