"""The session factory: every outbound request of the app goes through here.

``GuardedSession`` (from ``create_session``) is the plain session for token endpoints:
User-Agent, timeouts, ``trust_env`` off (a ``~/.netrc`` entry or proxy variable must not
replace the JWT or route around the address guard; security.md #13), no cookie jar, no
redirects, and the ``GuardedAdapter`` underneath for the address guard, TLS and bounds.

``IntegrationSession`` adds one integration: paths appended to its ``base_url``, its
token auth, its headers, retries, optional redirects that send only safe headers after a
host change, and an ``on_call`` callback told of every call (services wires it to
the call log).

Thread safety (security.md #20; requests #2766): a session holds no per-request state. The
cookie jar rejects everything, headers and auth are read-only after construction, the
token lives on each prepared request, and the connection pool is bounded and blocking.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from http.cookiejar import Cookie, DefaultCookiePolicy
from ssl import SSLContext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import Request

import requests
from django.views.decorators.debug import sensitive_variables
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

from .. import telemetry
from ..exceptions import CircuitOpen, RequestRefused
from ..redaction import redact_text
from ..settings import app_settings
from ..urlpaths import join_url, origin
from . import retry as retries
from .adapter import GuardedAdapter
from .auth import TokenAuth
from .bounds import Bounds
from .breaker import CircuitBreaker, is_failure
from .mtls import integration_ssl_context, mount_client_certificate
from .outcome import Outcome

if TYPE_CHECKING:
    from ..models import Integration
    from ..tokens.base import TokenProvider

ALWAYS_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")
# What may still be sent once a redirect leaves the integration's host (security.md #12,
# #40): requests' own defaults and the headers that describe a re-sent body. Every other
# header, configured on the integration or passed per call, may be a credential.
SAFE_AFTER_HOST_CHANGE = frozenset({
    "accept", "accept-encoding", "accept-language", "cache-control", "connection",
    "content-length", "content-type", "user-agent",
})
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class RejectAllCookies(DefaultCookiePolicy):
    """A session's cookie jar is shared by every thread using it: keep it empty."""

    def set_ok(self, cookie: Cookie, request: Request) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Request) -> bool:
        return False


def scrub(error: BaseException) -> BaseException:
    """Make ``error`` safe to raise to app code and Django's error reporter.

    Its message is redacted (requests' messages carry the URL, query included), and its
    traceback and chained causes are dropped: they pass through urllib3 frames whose
    local ``headers`` hold the Authorization header, and the error reporter prints the
    locals of every frame of every chained exception.
    """
    if error.args:
        error.args = (redact_text(str(error), limit=None),)
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    error.__traceback__ = None
    return error


class GuardedSession(requests.Session):
    """A ``requests.Session`` with the app's defaults; see the module docstring."""

    follow_redirects = False
    credential_headers: tuple[str, ...] = ALWAYS_CREDENTIALS

    def __init__(
        self,
        *,
        ca_bundle: str = "",
        read_timeout: float = 10.0,
        pool_maxsize: int | None = None,
    ) -> None:
        super().__init__()
        self.trust_env = False
        self.cookies.set_policy(RejectAllCookies())
        self.headers["User-Agent"] = app_settings.USER_AGENT
        self.verify = ca_bundle or True
        self.timeout = (float(app_settings.CONNECT_TIMEOUT), float(read_timeout))
        adapter = GuardedAdapter(pool_maxsize=pool_maxsize)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """``Session.prepare_request`` without the merging that cannot change anything
        here: this session sends no cookies and has no params or hooks of its own, so
        only headers and auth are merged. requests' generic merge costs more than 10% of
        a loopback call on Python 3.11 (runtime Protocol checks). A request with
        cookies, or a session given params, cookies, hooks or trust_env after all,
        takes requests' own path."""
        if (
            request.cookies
            or self.params
            or len(self.cookies)
            or any(self.hooks.values())
            or self.trust_env
        ):
            return super().prepare_request(request)
        headers = CaseInsensitiveDict(self.headers)
        headers.update(request.headers or {})
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]  # None removes a session header, as in requests
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=request.method,  # upper-cased by prepare_method
            url=request.url,
            files=request.files,
            data=request.data,
            json=request.json,
            headers=headers,
            params=request.params or None,
            auth=request.auth if request.auth is not None else self.auth,
            cookies=RequestsCookieJar(),
            hooks=request.hooks,
        )
        return prepared

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """No environment to merge (``trust_env`` is off); proxies pass through for the
        adapter to refuse."""
        if self.trust_env or self.proxies:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {
            "proxies": {scheme: url for scheme, url in (proxies or {}).items() if url is not None},
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        if not self.follow_redirects:
            return None
        return super().get_redirect_target(resp)

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """Check each redirect hop, and when it changes host send only the
        SAFE_AFTER_HOST_CHANGE headers (requests strips only Authorization; security.md
        #12, #40). No netrc, ever."""
        url = prepared_request.url or ""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or parts.username or parts.password:
            raise RequestRefused("redirect refused: only http(s) URLs without user:password@")
        if self.should_strip_auth(response.request.url or "", url):  # type: ignore[no-untyped-call]
            self.leave_home(prepared_request)

    def leave_home(self, prepared_request: requests.PreparedRequest) -> None:
        headers = prepared_request.headers
        credentials = {name.lower() for name in self.credential_headers}
        for name in [
            name
            for name in headers
            if name.lower() not in SAFE_AFTER_HOST_CHANGE or name.lower() in credentials
        ]:
            del headers[name]


class IntegrationSession(GuardedSession):
    """A session bound to one integration; safe to share between threads."""

    def __init__(
        self,
        integration: Integration,
        provider: TokenProvider,
        *,
        source: str = "api",
        on_call: OnCall | None = None,
    ) -> None:
        """``provider`` mints the integration's tokens; ``on_call`` hears of every call
        made through ``request`` (services passes the call log's ``log_call``)."""
        super().__init__(ca_bundle=integration.ca_bundle, read_timeout=integration.timeout)
        self.integration = integration
        self.source = source
        self.base_url = integration.base_url
        self.headers.update(integration.headers or {})
        self.follow_redirects = integration.follow_redirects
        self.provider = provider
        # The client certificate (RFC 8705) goes to the API and the token endpoint alike,
        # so certificate-bound tokens work where they are used (security.md #35).
        mtls = integration_ssl_context(integration)
        self.client_certificate = mtls[0] if mtls else None
        context = mtls[1] if mtls else None
        if context is not None:
            mount_client_certificate(self, context)
        # As many token-endpoint connections as API ones: the integration's accounts
        # share this session (http/transport.py) and each may be fetching its token.
        # Built on first use: a session attached to its integration's shared pools
        # (http/transport.py) never builds one.
        ca_bundle, pool_maxsize = integration.ca_bundle, app_settings.POOL_MAXSIZE
        self.auth = TokenAuth(
            provider,
            make_http=lambda: create_session(
                ca_bundle=ca_bundle, pool_maxsize=pool_maxsize, ssl_context=context
            ),
        )
        self.credential_headers = tuple(
            dict.fromkeys(ALWAYS_CREDENTIALS + provider.credential_headers)
        )
        self.retry = retries.RetryPolicy.from_settings(integration.idempotency_header)
        self.breaker = (
            CircuitBreaker(app_settings.CIRCUIT_FAILURES, float(app_settings.CIRCUIT_RESET))
            if app_settings.CIRCUIT_FAILURES > 0
            else None
        )
        self._home = origin(self.base_url)
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"<IntegrationSession {self.integration.slug!r}>"

    def resolve(self, url: str) -> str:
        """Absolute URL for ``url``; refuses another origin so credentials stay home."""
        if _ABSOLUTE.match(url):
            if origin(url) != self._home:
                raise RequestRefused(
                    f"{self.integration.slug}: absolute URL to another host refused; "
                    "pass a path relative to base_url"
                )
            return url
        return join_url(self.base_url, url)

    def leave_home(self, prepared_request: requests.PreparedRequest) -> None:
        """Beyond the headers, drop the 401-retry hook: a 401 from the other host must
        not be answered with a fresh token."""
        super().leave_home(prepared_request)
        hooks = prepared_request.hooks
        prepared_request.hooks = {
            **hooks,
            "response": [
                hook
                for hook in hooks["response"]
                if getattr(hook, "__self__", None) is not self.auth
            ],
        }

    @sensitive_variables("url", "full_url", "sent", "kwargs")
    def perform(self, method: str, url: str, *, trial: bool = False, **kwargs: Any) -> Outcome:
        """Make the call, retrying as the policy allows, and return what happened,
        response or (scrubbed) error; logs nothing. ``trial`` lets the call through an
        open circuit breaker (test calls)."""
        if telemetry.ENABLED:  # the only cost without OpenTelemetry installed
            return telemetry.traced(  # the provider's view names the account, if any
                self.provider.integration, method, lambda: self._guarded(method, url, trial, kwargs)
            )
        return self._guarded(method, url, trial, kwargs)

    @sensitive_variables("url", "kwargs")
    def _guarded(self, method: str, url: str, trial: bool, kwargs: dict[str, Any]) -> Outcome:
        breaker = self.breaker
        if breaker is None:
            return self._perform(method, url, **kwargs)
        try:
            breaker.allow(self.integration.slug, trial=trial)
        except CircuitOpen as exc:  # not sent: no attempt
            target = url if _ABSOLUTE.match(url) else join_url(self.base_url, url)
            return Outcome(method.upper(), target, time.perf_counter(), error=exc, attempts=0)
        outcome = self._perform(method, url, **kwargs)
        breaker.record(is_failure(outcome.response, outcome.error))
        return outcome

    @sensitive_variables("url", "full_url", "sent", "kwargs")
    def _perform(self, method: str, url: str, **kwargs: Any) -> Outcome:
        method = method.upper()
        started = time.perf_counter()
        attempts = 0
        full_url = url
        try:
            full_url = self.resolve(url)
            bounds = Bounds.start(
                kwargs.pop("timeout", None) or self.timeout,
                default_read=self.integration.timeout,
                deadline=kwargs.pop("deadline", None),
            )
            policy = self.retry
            if policy.needs_key(method):
                headers = CaseInsensitiveDict(kwargs.get("headers") or {})
                headers.setdefault(policy.idempotency_header, str(uuid.uuid4()))
                kwargs["headers"] = headers
            retryable = policy.allows(method)
            while True:
                attempts += 1
                try:
                    response = super().request(method, full_url, timeout=bounds, **kwargs)
                except (requests.ConnectionError, requests.ReadTimeout) as exc:
                    # A TLS failure will fail again. A read timeout may mean the remote
                    # did the work: only methods allowed to retry (idempotent, or keyed)
                    # get here, and the deadline still bounds the whole call.
                    if isinstance(exc, requests.exceptions.SSLError):
                        raise
                    if not (retryable and self._wait(policy, attempts, bounds)):
                        raise
                    continue
                if (
                    retryable
                    and response.status_code in retries.RETRY_STATUSES
                    and self._wait(policy, attempts, bounds, response)
                ):
                    response.close()
                    continue
                break
        except Exception as exc:  # returned, not swallowed: request() re-raises it
            sent = getattr(getattr(exc, "request", None), "url", None) or full_url
            return Outcome(method, sent, started, error=scrub(exc), attempts=max(attempts, 1))
        # The 401 hook's retry is one more attempt on the wire.
        attempts += int(getattr(response, "_integrations_attempts", 1)) - 1
        # The URL as first sent, query included (the log masks its values).
        first = response.history[0] if response.history else response
        sent = first.request.url or full_url
        return Outcome(method, sent, started, response=response, attempts=attempts)

    @staticmethod
    def _wait(
        policy: retries.RetryPolicy,
        attempt: int,
        bounds: Bounds,
        response: requests.Response | None = None,
    ) -> bool:
        """Sleep before another attempt; False when no attempt is left in the budget
        or the wait would end past the deadline."""
        if attempt > policy.total:
            return False
        delay = policy.delay(attempt, response)
        if time.monotonic() + delay >= bounds.deadline:
            return False
        retries.sleep(delay)
        return True

    @sensitive_variables("url", "full_url", "sent", "kwargs")
    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if args:
            raise TypeError("pass request options as keyword arguments")
        outcome = self.perform(
            method.decode() if isinstance(method, bytes) else method,
            url.decode() if isinstance(url, bytes) else url,
            **kwargs,
        )
        if self._on_call is not None:
            self._on_call(self.integration, self.source, outcome)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.response is not None
        return outcome.response


def create_session(
    *, ca_bundle: str = "", pool_maxsize: int | None = None, ssl_context: SSLContext | None = None
) -> GuardedSession:
    """A plain session with the app's defaults, for token endpoints and the like;
    ``ssl_context`` (``mtls.client_ssl_context``) presents a client certificate."""
    session = GuardedSession(ca_bundle=ca_bundle, pool_maxsize=pool_maxsize or 4)
    if ssl_context is not None:
        mount_client_certificate(session, ssl_context)
    return session


OnCall = Callable[["Integration", str, Outcome], None]
"""Told of each call made through ``IntegrationSession.request``: (integration, source,
outcome)."""
