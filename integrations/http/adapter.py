"""The transport every session mounts: guarded connections, bounded reads, TLS on.

An adapter is the one place every request passes through, whichever session sent it
and whatever its caller asked for, so the rules that must never be bypassed live here:
TLS verification never turned off (security.md #14), no proxies (they would route around
the address guard; security.md #13), connections only to checked addresses (security.md #11),
and bodies read within the call's deadline and size cap (security.md #16-17).
"""

from __future__ import annotations

import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..exceptions import DeadlineExceeded, RequestRefused
from ..settings import app_settings
from .bounds import Bounds, WatchedConnectionMixin, check_length, current, read_body, watchdog
from .guard import GuardedConnectionMixin

# Used only when a caller reaches the adapter without any timeout; sessions always
# pass one.
DEFAULT_READ_TIMEOUT = 10.0


class Connection(GuardedConnectionMixin, WatchedConnectionMixin, HTTPConnection):
    pass


class TLSConnection(GuardedConnectionMixin, WatchedConnectionMixin, HTTPSConnection):
    pass


class ConnectionPool(HTTPConnectionPool):
    ConnectionCls = Connection


class TLSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = TLSConnection


POOL_CLASSES: dict[str, Any] = {"http": ConnectionPool, "https": TLSConnectionPool}


class GuardedAdapter(HTTPAdapter):
    def __init__(self, *, pool_maxsize: int | None = None) -> None:
        # pool_block: with more threads than connections, threads wait for a free
        # connection instead of opening throwaway ones (security.md #20).
        super().__init__(
            pool_connections=4,
            pool_maxsize=pool_maxsize or app_settings.POOL_MAXSIZE,
            pool_block=True,
            max_retries=0,
        )

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise RequestRefused("proxies are not supported: they would bypass the address guard")

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        if verify is False or verify is None:
            raise RequestRefused(
                "TLS verification cannot be turned off; give the integration a CA bundle "
                "(ca_bundle) to trust a private CA"
            )
        if proxies:
            raise RequestRefused("proxies are not supported: they would bypass the address guard")
        bounds = Bounds.start(timeout, default_read=DEFAULT_READ_TIMEOUT)
        outer = getattr(current, "deadline", None), getattr(current, "ticket", None)
        current.deadline, current.ticket = bounds.deadline, None
        try:
            try:
                response = super().send(
                    request, stream=True, timeout=bounds.for_attempt(), verify=verify, cert=cert
                )
            except requests.RequestException:
                if time.monotonic() >= bounds.deadline:
                    # The watchdog cut the connection: say why, not "connection aborted".
                    raise DeadlineExceeded("the call ran past its deadline") from None
                raise
            max_bytes = app_settings.MAX_RESPONSE_BYTES
            check_length(response, max_bytes)
            if not stream:
                read_body(response, bounds, max_bytes)
        finally:
            if current.ticket is not None:
                watchdog.release(current.ticket)
            current.deadline, current.ticket = outer
        return response
