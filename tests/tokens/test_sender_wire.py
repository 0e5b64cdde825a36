"""What DPoP and the new token-request options put on the wire, against loopback
servers (security.md #34): proofs on token and resource requests, nonces kept per
origin and retried once (never looped), token types, RFC 8707 params, jwt_grant's
client authentication."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from integrations import services
from integrations.exceptions import TokenEndpointError, TokenError
from integrations.tokens.dpop import DPoPKey, access_token_hash
from integrations.tokens.sender import DPOP_KEY
from tests import jose
from tests.keys import ec_pem, public_pem
from tests.loopback import LoopbackServer, Recorded, Reply

pytestmark = pytest.mark.django_db
KEY = ec_pem()


def decoded(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims = (
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in proof.split(".")[:2]
    )
    return header, claims


def fields(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.body.decode())


def token_integration(
    make_integration: Any,
    server: LoopbackServer,
    auth_type: str = "client_assertion",
    secrets: dict[str, str] | None = None,
    **options: Any,
) -> None:
    """An ES256 ``auth_type`` integration whose token endpoint is ``server``'s /token
    and whose API is its /api/."""
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type=auth_type,
        auth_config={"algorithm": "ES256", "token_url": f"{server.url}/token", **options},
        secrets={"key": KEY, **(secrets or {})},
    )


def dpop_integration(make_integration: Any, server: LoopbackServer, **options: Any) -> DPoPKey:
    key = DPoPKey.generate()
    token_integration(
        make_integration,
        server,
        client_id="c1",
        dpop=True,
        secrets={DPOP_KEY: key.to_pem()},
        **options,
    )
    return key


def token_answer(token_type: str = "DPoP", **headers: str) -> Any:
    body = {"access_token": "at-1", "token_type": token_type, "expires_in": 600}
    return lambda request: Reply(200, body, headers=dict(headers))


def test_proofs_on_token_and_resource_requests(make_integration: Any, server: LoopbackServer):
    key = dpop_integration(make_integration, server)
    server.route("POST", "/token", token_answer())
    server.route("GET", "/api/items", lambda r: Reply(200, {}, headers={"DPoP-Nonce": "n-2"}))
    assert services.request("billing", "GET", "items?page=2#x").status_code == 200
    services.request("billing", "GET", "items")
    token_request = server.calls("POST", "/token")[0]
    header, claims = decoded(token_request.headers["DPoP"])
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    assert claims["htm"] == "POST" and claims["htu"] == f"{server.url}/token"
    assert "ath" not in claims and "nonce" not in claims
    first, second = server.calls("GET", "/api/items")
    assert first.headers["Authorization"] == "DPoP at-1"
    _, proof = decoded(first.headers["DPoP"])
    assert proof["htu"] == f"{server.url}/api/items"  # no query, no fragment
    assert proof["ath"] == access_token_hash("at-1")
    assert "nonce" not in proof
    _, later = decoded(second.headers["DPoP"])
    assert later["nonce"] == "n-2"  # kept from the 200's DPoP-Nonce
    assert later["jti"] != proof["jti"]
    # The assertion still verifies: DPoP changes nothing of client authentication.
    assertion = fields(token_request)["client_assertion"][0]
    jose.verify(assertion, public_pem(KEY), "ES256")


def test_token_endpoint_nonce_is_retried_once_not_looped(make_integration, server):
    dpop_integration(make_integration, server)

    def always_nonce(request: Recorded) -> Reply:
        return Reply(400, {"error": "use_dpop_nonce", "error_description": "need a nonce"},
                     headers={"DPoP-Nonce": f"n{len(server.calls('POST', '/token'))}"})

    server.route("POST", "/token", always_nonce)
    with pytest.raises(TokenEndpointError) as caught:
        services.request("billing", "GET", "items")
    assert caught.value.error == "use_dpop_nonce"
    assert caught.value.error_description == "need a nonce"
    requests = server.calls("POST", "/token")
    assert len(requests) == 2
    _, retried = decoded(requests[1].headers["DPoP"])
    assert retried["nonce"] == "n1"
    first, second = (fields(r)["client_assertion"][0] for r in requests)
    assert first != second  # a fresh assertion: its jti was seen


def test_resource_nonce_is_retried_once_not_looped(make_integration, server):
    dpop_integration(make_integration, server)
    server.route("POST", "/token", token_answer())
    challenge = {
        "WWW-Authenticate": 'DPoP error="use_dpop_nonce", error_description="nonce!"',
        "DPoP-Nonce": "r-1",
    }
    server.route("GET", "/api/items", lambda r: Reply(401, {}, headers=challenge))
    response = services.request("billing", "GET", "items")
    assert response.status_code == 401
    calls = server.calls("GET", "/api/items")
    assert len(calls) == 2
    _, retried = decoded(calls[1].headers["DPoP"])
    assert retried["nonce"] == "r-1"
    assert calls[1].headers["Authorization"] == "DPoP at-1"  # the same token
    assert len(server.calls("POST", "/token")) == 1


def test_a_bearer_token_answered_to_dpop_is_refused(make_integration, server):
    dpop_integration(make_integration, server)
    server.route("POST", "/token", token_answer("Bearer"))
    with pytest.raises(TokenError, match="DPoP was asked for .* issued a 'Bearer' token"):
        services.request("billing", "GET", "items")
    assert not server.calls("GET", "/api/items")


def test_a_dpop_token_is_never_sent_as_bearer(make_integration, server):
    token_integration(make_integration, server, client_id="c1")
    server.route("POST", "/token", token_answer("DPoP"))
    with pytest.raises(TokenError, match="turn dpop on"):
        services.request("billing", "GET", "items")
    assert not server.calls("GET", "/api/items")


def test_params_lists_and_jwt_grant_client_secret_post(make_integration, server):
    server.route("POST", "/token", token_answer("Bearer"))
    server.route("GET", "/api/items", lambda r: Reply(200, {}))
    token_integration(
        make_integration,
        server,
        "jwt_grant",
        client_id="app",
        params={"resource": ["https://a.example/", "https://b.example/"]},
        secrets={"client_secret": "s3cr3t-" * 5},
    )
    services.request("billing", "GET", "items")
    sent = fields(server.calls("POST", "/token")[0])
    assert sent["resource"] == ["https://a.example/", "https://b.example/"]
    assert sent["client_id"] == ["app"] and sent["client_secret"] == ["s3cr3t-" * 5]
    assert "client_assertion" not in sent


def test_jwt_grant_with_a_client_assertion(make_integration, server):
    server.route("POST", "/token", token_answer("Bearer"))
    server.route("GET", "/api/items", lambda r: Reply(200, {}))
    token_integration(
        make_integration, server, "jwt_grant",
        client_id="app", client_assertion=True, claims={"sub": "u1"},
    )
    services.request("billing", "GET", "items")
    sent = fields(server.calls("POST", "/token")[0])
    _, grant = jose.verify(sent["assertion"][0], public_pem(KEY), "ES256")
    _, client = jose.verify(sent["client_assertion"][0], public_pem(KEY), "ES256")
    assert grant["sub"] == "u1"
    assert client["iss"] == client["sub"] == "app"
    assert client["aud"] == f"{server.url}/token" and client["jti"]
    assert sent["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
