"""The generic flows on the wire: jwt_grant, client_assertion and jwt_exchange against
loopback token endpoints that verify each assertion with joserfc."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import requests

from integrations import services
from integrations.exceptions import (
    IntegrationError,
    TokenEndpointError,
    TokenEndpointUnreachable,
    TokenError,
)
from integrations.models import CallLog
from tests.keys import CANARY, HMAC_SECRET, ec_pem, rsa_pem
from tests.loopback import Reply
from tests.tokens.emulators import AuthServer, claims_within, expect

pytestmark = pytest.mark.django_db

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def grant_integration(make_integration, server, token_url, **options):
    config = {
        "algorithm": "RS256",
        "key_id": "k1",
        "claims": {"iss": "shop", "sub": "robot"},
        "token_url": token_url,
        "scope": "read write",
        **options,
    }
    return make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_grant",
        auth_config=config,
        secrets={"key": rsa_pem()},
    )


def grant_form(request):
    form = request.form
    if form.get("grant_type") != GRANT:
        return "grant_type must be jwt-bearer"
    if form.get("scope") != "read write":
        return "scope missing"
    return None


def test_jwt_grant_trades_the_assertion_and_reuses_the_access_token(server, make_integration):
    """RFC 7523 §2.1, security.md #4, #21: form POST with grant_type/assertion/scope, aud = the
    token URL by default; the access token is sent as Bearer and reused."""
    auth = AuthServer(
        server,
        algorithm="RS256",
        rules=[claims_within(600), expect(iss="shop", sub="robot", header_kid="k1")],
        form=grant_form,
    )
    auth.rules.append(expect(aud=auth.url))
    grant_integration(make_integration, server, auth.url)
    for _ in range(3):
        assert services.request("billing", "GET", "resource").status_code == 200
    assert auth.mints == 1
    assert {r.bearer for r in server.calls("GET", "/api/resource")} == {auth.issued[0]}
    header, claims = auth.assertions[0]
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "k1"}


def test_jwt_grant_with_a_broken_rule_is_refused_with_a_typed_error(server, make_integration):
    """Negative: an aud the server does not accept is refused; the error carries OAuth's
    error and description and never the assertion or key (security.md #26)."""
    auth = AuthServer(
        server,
        algorithm="RS256",
        rules=[expect(aud="https://elsewhere.example/token")],
    )
    grant_integration(make_integration, server, auth.url)
    with pytest.raises(TokenEndpointError) as caught:
        services.request("billing", "GET", "resource")
    error = caught.value
    assert error.status_code == 400 and error.error == "invalid_grant"
    assert "aud must be" in error.error_description
    assert isinstance(error, IntegrationError)
    assert "eyJ" not in str(error) and "BEGIN" not in str(error)
    row = CallLog.objects.get()
    assert not row.ok and "TokenEndpointError" in row.error and "eyJ" not in row.error


def test_token_endpoint_echoing_the_assertion_is_redacted(server, make_integration):
    """security.md #26: a server that echoes the assertion in error_description does not get
    it into the exception text."""

    def echo(request):
        return Reply(
            400, {"error": "invalid_grant", "error_description": "got " + request.form["assertion"]}
        )

    server.route("POST", "/token", echo)
    grant_integration(make_integration, server, f"{server.url}/token")
    with pytest.raises(TokenEndpointError) as caught:
        services.request("billing", "GET", "resource")
    assertion = server.calls("POST", "/token")[0].form["assertion"]
    assert assertion not in str(caught.value) and assertion not in caught.value.error_description
    assert "[redacted]" in str(caught.value)


@pytest.mark.parametrize(
    "reply,message",
    [
        (Reply(200, "<html>login</html>", {"Content-Type": "text/html"}), "not a JSON object"),
        (Reply(200, {"token_type": "Bearer", "expires_in": 60}), "has no 'access_token'"),
        (Reply(200, {"access_token": "x", "token_type": "DPoP"}), "only Bearer"),
        (Reply(502, "<html>bad gateway</html>"), r"refused \(HTTP 502\)"),
    ],
)
def test_malformed_token_answers_are_clear_token_errors(server, make_integration, reply, message):
    """A non-JSON answer, a missing access_token, a non-Bearer token type or a gateway
    error is a TokenError that says which, not a KeyError or a traceback."""
    server.route("POST", "/token", lambda r: reply)
    grant_integration(make_integration, server, f"{server.url}/token")
    with pytest.raises(TokenError, match=message):
        services.request("billing", "GET", "resource")


def test_unreachable_token_endpoint_is_a_token_error(make_integration, server):
    """A token endpoint that does not answer fails as a TokenError, no traceback text;
    it is also a requests.ConnectionError, so callers catching requests' errors catch it."""
    grant_integration(make_integration, server, "http://127.0.0.1:9/token")
    with pytest.raises(TokenError, match="cannot reach the token URL") as caught:
        services.request("billing", "GET", "resource")
    assert isinstance(caught.value, requests.ConnectionError)
    assert isinstance(caught.value, TokenEndpointUnreachable)


def test_token_url_is_validated_on_save(make_integration, server):
    """security.md #10: token_url is checked like base_url (scheme, host, no user:pass@)."""
    from django.core.exceptions import ValidationError

    for bad in ("ftp://idp.example/token", "https://user:pw@idp.example/token", "/token"):
        with pytest.raises(ValidationError, match="token_url"):
            grant_integration(make_integration, server, bad)


def client_form(request):
    form = request.form
    if form.get("grant_type") != "client_credentials":
        return "grant_type must be client_credentials"
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return "client_assertion_type"
    if form.get("client_id") != "app-123":
        return "client_id"
    return None


def client_assertion_integration(make_integration, server, token_url, **options):
    return make_integration(
        base_url=f"{server.url}/api/",
        auth_type="client_assertion",
        auth_config={
            "algorithm": "ES256",
            "client_id": "app-123",
            "token_url": token_url,
            "scope": "api",
            **options,
        },
        secrets={"key": ec_pem()},
    )


def test_client_assertion_sends_private_key_jwt(server, make_integration):
    """RFC 7523 §2.2 / OIDC private_key_jwt: iss = sub = client_id, aud = token URL, a
    fresh uuid4 jti on every assertion (replays are refused by the emulator)."""
    auth = AuthServer(
        server,
        algorithm="ES256",
        rules=[claims_within(300), expect(iss="app-123", sub="app-123")],
        form=client_form,
        expires_in=61,
    )
    auth.rules.append(expect(aud=auth.url))
    client_assertion_integration(make_integration, server, auth.url)
    assert services.request("billing", "GET", "resource").status_code == 200
    from integrations.tokens.cache import token_cache

    token_cache.clear()
    from django.core.cache import cache

    cache.clear()
    assert services.request("billing", "GET", "resource").status_code == 200
    jtis = [claims["jti"] for _, claims in auth.assertions]
    assert len(jtis) == 2 and len(set(jtis)) == 2 and all(len(j) == 36 for j in jtis)


def test_client_assertion_audience_and_params(server, make_integration):
    """Auth0-style: aud overridden by `audience`, extra form params sent as given."""
    auth = AuthServer(
        server,
        algorithm="ES256",
        rules=[expect(aud="https://tenant.example/")],
        form=lambda r: None if r.form.get("audience") == "https://api.example/" else "audience",
    )
    client_assertion_integration(
        make_integration,
        server,
        auth.url,
        audience="https://tenant.example/",
        params={"audience": "https://api.example/"},
    )
    assert services.request("billing", "GET", "resource").status_code == 200


def test_client_assertion_refuses_overriding_fixed_params(make_integration, server):
    """The app owns grant_type and the assertion fields: params cannot replace them."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="set by the app"):
        client_assertion_integration(
            make_integration, server, f"{server.url}/token", params={"grant_type": "password"}
        )


def exchange_integration(make_integration, server, **options):
    return make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_exchange",
        auth_config={
            "algorithm": "HS256",
            "claims": {"iss": "shop"},
            "exchange_url": f"{server.url}/exchange",
            **options,
        },
        secrets={"key": HMAC_SECRET},
    )


@pytest.mark.parametrize(
    "expires",
    [
        lambda: datetime.fromtimestamp(time.time() + 3600, UTC).isoformat().replace("+00:00", "Z"),
        lambda: int(time.time() + 3600),
        lambda: str(int(time.time() + 3600)),
    ],
    ids=["iso8601", "epoch", "epoch-text"],
)
def test_jwt_exchange_reads_token_and_expiry_fields(server, make_integration, expires):
    """reference.md jwt_exchange: JWT as Bearer to exchange_url; token and expiry (ISO 8601 or
    epoch seconds) read from the configured fields; the token is reused until then."""
    auth = AuthServer(
        server,
        algorithm="HS256",
        rules=[claims_within(300), expect(iss="shop")],
        path="/exchange",
        answer=lambda token, ttl: {"data": {"jwt": token, "valid_until": expires()}},
    )
    exchange_integration(
        make_integration, server, token_field="data.jwt", expires_field="data.valid_until"
    )
    for _ in range(2):
        assert services.request("billing", "GET", "resource").status_code == 200
    assert auth.mints == 1
    assert server.calls("POST", "/exchange")[0].headers["Authorization"].startswith("Bearer eyJ")


def test_jwt_exchange_method_and_expires_in(server, make_integration):
    """exchange_method is honoured; without expires_field in the answer, expires_in is used."""
    auth = AuthServer(
        server,
        algorithm="HS256",
        rules=[],
        path="/exchange",
        method="GET",
        answer=lambda token, ttl: {"token": token, "expires_in": ttl},
    )
    exchange_integration(make_integration, server, exchange_method="GET")
    assert services.request("billing", "GET", "resource").status_code == 200
    assert auth.mints == 1


def test_jwt_exchange_bad_expiry_is_a_clear_error(server, make_integration):
    """An expiry that is neither ISO 8601 nor epoch seconds names the field."""
    server.route("POST", "/exchange", lambda r: Reply(200, {"token": "t", "expires_at": "soon"}))
    exchange_integration(make_integration, server)
    with pytest.raises(TokenError, match="'expires_at'.*neither ISO 8601 nor epoch"):
        services.request("billing", "GET", "resource")


def test_secrets_never_reach_call_logs_or_errors(server, make_integration):
    """security.md #26: after a refused exchange, no log row or message holds the key."""
    server.route(
        "POST", "/exchange", lambda r: Reply(403, {"message": "Bad credentials " + CANARY})
    )
    exchange_integration(make_integration, server)
    with pytest.raises(TokenEndpointError) as caught:
        services.request("billing", "GET", "resource")
    assert caught.value.status_code == 403
    dump = json.dumps(list(CallLog.objects.values()), default=str)
    assert "eyJ" not in dump and HMAC_SECRET not in dump


def test_client_assertion_with_a_broken_rule_is_refused(server, make_integration):
    """Negative: a server expecting aud = its tenant URL refuses the default aud (the
    token URL) with invalid_client; the typed error carries it, not the assertion."""
    auth = AuthServer(
        server,
        algorithm="ES256",
        rules=[expect(aud="https://tenant.example/")],
    )
    client_assertion_integration(make_integration, server, auth.url)
    with pytest.raises(TokenEndpointError, match="aud must be") as caught:
        services.request("billing", "GET", "resource")
    assert caught.value.error == "invalid_grant" and "eyJ" not in str(caught.value)


def test_jwt_exchange_with_a_broken_rule_is_refused(server, make_integration):
    """Negative: an exchange endpoint verifying with another secret refuses the JWT; the
    API is never called."""
    AuthServer(
        server,
        verify_key=(HMAC_SECRET[::-1]).encode(),
        algorithm="HS256",
        rules=[],
        path="/exchange",
    )
    exchange_integration(make_integration, server)
    with pytest.raises(TokenEndpointError, match=r"refused \(HTTP 401\): invalid_grant"):
        services.request("billing", "GET", "resource")
    assert not server.calls("GET", "/api/resource")


def test_token_endpoints_go_through_the_address_guard(server, make_integration, settings):
    """security.md #11: token URLs are called through the session factory, so the address
    guard refuses a loopback token URL when private networks are not allowed; nothing
    reaches the token endpoint."""
    from integrations.exceptions import RequestRefused

    grant_integration(make_integration, server, f"{server.url}/token")
    settings.INTEGRATIONS_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(RequestRefused):
        services.request("billing", "GET", "resource")
    assert not server.calls("POST", "/token")
