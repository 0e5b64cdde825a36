"""The address guard (SSRF; security.md #10-11).

Unless ``INTEGRATIONS_ALLOW_PRIVATE_NETWORKS`` is on, a connection may only go to a
globally routable address. The check happens where the socket is opened: the host is
resolved once, every address it resolves to is checked, and the socket connects to a
checked address, so there is no window between check and use for DNS rebinding. TLS
still names the host (SNI and certificate matching use the hostname, not the address).

Resolving also catches numeric spellings that ``ipaddress`` rejects but the C resolver
accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1`` all reach 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket

from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from ..exceptions import RequestRefused
from ..settings import app_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that carry an IPv4 address in their last 32 bits and can reach it:
# IPv4-compatible (deprecated) and the NAT64 well-known prefix.
_EMBEDDING_V4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))


class AddressRefused(RequestRefused):
    """The host resolves to an address that is not globally routable."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any (mapped, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _EMBEDDING_V4) and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local,
    CGNAT, reserved or multicast), judging an IPv6 address by any IPv4 it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def check_address(host: str, address: str) -> None:
    """Raise AddressRefused unless ``address`` (what ``host`` resolved to) is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not is_public(ip):
        raise AddressRefused(
            f"{host} resolves to {ip}, which is not a public address; set "
            "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS to allow private networks"
        )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, each checked (raises AddressRefused)."""
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        check_address(host, address)
    return addresses


class GuardedConnectionMixin:
    """Overrides urllib3's ``_new_conn``: resolve once, check all, connect to a checked
    address. ``host`` stays the hostname, so TLS is unaffected."""

    _dns_host: str
    host: str
    port: int

    def _new_conn(self) -> socket.socket:
        if app_settings.ALLOW_PRIVATE_NETWORKS:
            return super()._new_conn()  # type: ignore[misc,no-any-return]
        try:
            addresses = resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        hostname = self._dns_host
        error: Exception | None = None
        try:
            for address in addresses:
                # urllib3 connects to ``_dns_host``; pointing it at the checked address
                # for the duration of the connect is what closes the rebinding window.
                self._dns_host = address
                try:
                    return super()._new_conn()  # type: ignore[misc,no-any-return]
                except (NewConnectionError, ConnectTimeoutError) as exc:
                    error = exc
        finally:
            self._dns_host = hostname
        assert error is not None
        raise error
