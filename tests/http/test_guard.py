"""The address guard (security.md #10-11): private addresses refused at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import requests

from integrations import services
from integrations.exceptions import IntegrationError, RequestRefused
from integrations.http import create_session, guard
from integrations.models import CallLog
from tests.loopback import Reply

pytestmark = pytest.mark.django_db

REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f.1",  # hexadecimal, short form
    "0177.0.0.1",  # octal
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata, link-local
    "100.64.0.1",  # CGNAT: is_private misses it
    "0.0.0.0",
    "[fc00::1]",
    "[fe80::1]",
]


@pytest.fixture
def private_blocked(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_NETWORKS = False


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_every_private_form_is_refused_before_connecting(
    server, make_integration, private_blocked, host
):
    """security.md #11: each spelling of a non-global address is refused, nothing reaches the
    loopback server, and the refusal is logged with its class."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"http://{host}:{server.port}/api/")
    with pytest.raises(RequestRefused, match="not a public address"):
        services.request("billing", "GET", "x")
    assert server.requests == []
    row = CallLog.objects.get()
    assert row.error.startswith("AddressRefused") and row.status_code is None


def test_refused_address_is_an_integration_error_with_a_clear_message(
    server, make_integration, private_blocked
):
    """security.md #11: the message names the host, the address and the setting to change."""
    make_integration(base_url=f"http://2130706433:{server.port}/api/")
    with pytest.raises(IntegrationError) as caught:
        services.request("billing", "GET", "x")
    message = str(caught.value)
    assert "2130706433 resolves to 127.0.0.1" in message
    assert "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS" in message


def test_token_endpoint_sessions_are_guarded_too(server, private_blocked):
    """security.md #11: create_session (token endpoints) refuses private addresses."""
    server.route("POST", "/token", lambda r: Reply(200, {"access_token": "t"}))
    with pytest.raises(RequestRefused):
        create_session().post(f"{server.url}/token", data={"a": "b"})
    assert server.requests == []


def test_allowed_when_the_setting_says_so(server, make_integration):
    """The tests' default: ALLOW_PRIVATE_NETWORKS on reaches loopback."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    assert services.request("billing", "GET", "x").status_code == 200


def test_check_and_connect_use_one_resolution(
    server, make_integration, private_blocked, monkeypatch
):
    """security.md #11 (no DNS rebinding): the host is resolved once per connection and the
    socket connects to the address that was checked, not to a second lookup's answer."""
    server.route("GET", "/api/x", lambda r: Reply(200, {"ok": True}))
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host == "api.rebind.test":
            lookups.append(host)
            # First answer passes the check; any later one points inside the network.
            address = "127.0.0.1" if len(lookups) == 1 else "10.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    # Stand-in for a public address: only 127.0.0.1 counts as public here.
    monkeypatch.setattr(guard, "is_public", lambda ip: str(ip) == "127.0.0.1")
    make_integration(base_url=f"http://api.rebind.test:{server.port}/api/")
    response = services.request("billing", "GET", "x")
    assert response.json() == {"ok": True}
    assert lookups == ["api.rebind.test"]
    assert server.requests[0].headers["Host"] == f"api.rebind.test:{server.port}"


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "224.0.0.1",
        "255.255.255.255",
        "198.18.0.1",  # benchmarking range
    ],
)
def test_addresses_embedding_or_naming_private_ones_are_not_public(address):
    """security.md #11: IPv6 forms that carry a private IPv4 address, and special ranges."""
    assert not guard.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    """The guard lets ordinary internet addresses through."""
    assert guard.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http://user:pw@127.0.0.1/x"]
)
def test_only_http_urls_without_userinfo_are_saved(make_integration, url):
    """security.md #10: base URLs are http(s) only and carry no user:password@."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        make_integration(base_url=url)


def test_requests_own_connection_errors_still_surface(private_blocked):
    """A name that does not resolve is a connection error, not a refusal."""
    with pytest.raises(requests.ConnectionError):
        create_session().get("http://does-not-exist.invalid/")
