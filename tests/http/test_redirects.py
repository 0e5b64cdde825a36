"""Redirects (security.md #12): off by default; when on, each hop re-checked and every
credential header dropped when the host changes."""

from __future__ import annotations

import pytest

from integrations import services
from integrations.exceptions import RequestRefused
from integrations.http import guard
from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def other():
    with LoopbackServer() as srv:
        yield srv


def moved(location: str):
    return lambda r: Reply(302, b"", {"Location": location})


def test_redirects_are_not_followed_by_default(server, other, make_integration):
    """security.md #12: the 302 itself is returned; the other server sees nothing."""
    server.route("GET", "/api/x", moved(f"{other.url}/y"))
    make_integration(base_url=f"{server.url}/api/")
    response = services.request("billing", "GET", "x")
    assert response.status_code == 302 and other.requests == []


def test_same_host_redirect_keeps_the_token(server, make_integration):
    """A redirect within the integration's host keeps its credentials."""
    server.route("GET", "/api/old", moved("/api/new"))
    server.route("GET", "/api/new", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/", follow_redirects=True)
    assert services.request("billing", "GET", "old").json() == {"ok": True}
    assert server.requests[1].bearer == server.requests[0].bearer != ""


def test_other_host_gets_no_credential_headers(server, other, make_integration):
    """security.md #12: on a host change Authorization, the provider's custom header_name,
    Cookie and Proxy-Authorization are all dropped (requests drops only Authorization)."""
    server.route("GET", "/api/x", moved(f"http://localhost:{other.port}/landing"))
    other.route("GET", "/landing", lambda r: Reply(200, {"landed": True}))
    make_integration(
        base_url=f"{server.url}/api/",
        follow_redirects=True,
        auth_config={
            "algorithm": "HS256",
            "claims": {"aud": "b"},
            "header_name": "X-Api-Token",
            "scheme": "",
        },
    )
    response = services.request(
        "billing", "GET", "x", headers={"Cookie": "sid=1", "Proxy-Authorization": "Basic eA=="}
    )
    assert response.json() == {"landed": True}
    assert server.requests[0].headers["X-Api-Token"]
    landed = {name.lower() for name in other.requests[0].headers}
    assert not landed & {"x-api-token", "authorization", "cookie", "proxy-authorization"}


def test_401_from_the_other_host_is_not_answered_with_a_token(server, other, make_integration):
    """security.md #12/24: the 401 retry is dropped with the credentials, so the other host
    never receives a fresh token either."""
    server.route("GET", "/api/x", moved(f"http://localhost:{other.port}/landing"))
    other.route("GET", "/landing", lambda r: Reply(401, b""))
    make_integration(base_url=f"{server.url}/api/", follow_redirects=True)
    assert services.request("billing", "GET", "x").status_code == 401
    assert len(other.requests) == 1 and "Authorization" not in other.requests[0].headers


def test_each_hop_is_checked_by_the_address_guard(server, make_integration, settings, monkeypatch):
    """security.md #11-12: a redirect to a private address is refused at connect time."""
    settings.INTEGRATIONS_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(guard, "is_public", lambda ip: str(ip) == "127.0.0.1")
    server.route("GET", "/api/x", moved("http://127.0.0.2:9/metadata"))
    make_integration(base_url=f"{server.url}/api/", follow_redirects=True)
    with pytest.raises(RequestRefused, match="127.0.0.2"):
        services.request("billing", "GET", "x")


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"])
def test_redirect_to_other_schemes_or_userinfo_is_refused(server, make_integration, location):
    """security.md #10: hops must be http(s) without user:password@."""
    server.route("GET", "/api/x", moved(location))
    make_integration(base_url=f"{server.url}/api/", follow_redirects=True)
    with pytest.raises(RequestRefused):
        services.request("billing", "GET", "x")


def test_caller_can_still_decline_redirects(server, make_integration):
    """allow_redirects=False per call wins over the integration's setting."""
    server.route("GET", "/api/x", moved("/api/y"))
    make_integration(base_url=f"{server.url}/api/", follow_redirects=True)
    assert services.request("billing", "GET", "x", allow_redirects=False).status_code == 302


def test_other_host_gets_only_safe_headers(server, other, make_integration):
    """security.md #12, #40: after a cross-host redirect only an allowlist of safe
    headers is sent; headers configured on the integration and per-call headers (any of
    which may be a credential) are dropped, whatever their names."""
    server.route("GET", "/api/x", moved(f"http://localhost:{other.port}/landing"))
    other.route("GET", "/landing", lambda r: Reply(200, {"landed": True}))
    make_integration(
        base_url=f"{server.url}/api/",
        follow_redirects=True,
        headers={"X-Tenant-Key": "configured-secret"},
    )
    response = services.request(
        "billing", "GET", "x", headers={"X-Signature": "per-call-secret", "Accept": "text/csv"}
    )
    assert response.json() == {"landed": True}
    assert server.requests[0].headers["X-Tenant-Key"] == "configured-secret"
    landed = {name.lower(): value for name, value in other.requests[0].headers.items()}
    assert "x-tenant-key" not in landed and "x-signature" not in landed
    assert landed["accept"] == "text/csv" and landed["user-agent"]
    assert set(landed) <= {"host", "accept", "accept-encoding", "connection", "user-agent"}
