"""jwt_bearer end to end: the service layer's session puts a signed JWT on the wire."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from integrations import services
from integrations.models import CallLog
from integrations.tokens.base import MAX_LIFETIME
from tests import jose
from tests.keys import HMAC_SECRET, key_for, verify_key_for
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "algorithm",
    [
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    ],
)
def test_every_algorithm_verifies_with_joserfc(server, make_integration, algorithm):
    """security.md #1, #4: each allowed algorithm signs a token another JOSE library accepts,
    with alg as configured, typ JWT, kid from key_id and integer iat/exp."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    make_integration(
        base_url=f"{server.url}/api/",
        auth_config={
            "algorithm": algorithm,
            "key_id": "k1",
            "claims": {"iss": "shop", "aud": "billing"},
            "lifetime": 120,
        },
        secrets={"key": key_for(algorithm)},
    )
    response = services.request("billing", "GET", "/health")
    assert response.status_code == 200
    token = server.requests[-1].bearer
    header, claims = jose.verify(token, verify_key_for(algorithm), algorithm)
    assert header == {"alg": algorithm, "typ": "JWT", "kid": "k1"}
    assert claims["iss"] == "shop" and claims["aud"] == "billing"
    assert isinstance(claims["iat"], int) and claims["exp"] - claims["iat"] == 120 + 30


def test_token_is_cached_between_calls(server, make_integration):
    """security.md #21: a valid token is reused, not re-minted per call."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    for _ in range(3):
        services.request("billing", "GET", "x")
    assert len({r.bearer for r in server.requests}) == 1


def test_401_mints_a_different_token_and_retries_once(server, make_integration):
    """security.md #24: a refused token is replaced by a new one (different bytes), once;
    the second 401 is returned and the log row counts 2 attempts."""
    server.route("GET", "/api/x", lambda r: Reply(401, {"error": "invalid_token"}))
    make_integration(
        base_url=f"{server.url}/api/",
        auth_config={"algorithm": "HS256", "claims": {"aud": "billing", "jti": True}},
    )
    response = services.request("billing", "GET", "x")
    assert response.status_code == 401
    sent = [r.bearer for r in server.requests]
    assert len(sent) == 2 and sent[0] != sent[1]
    row = CallLog.objects.get()
    assert row.attempts == 2 and not row.ok


def test_path_is_appended_to_base_url(server, make_integration):
    """reference.md: base_url + '/user' and + 'user' both keep the base path."""
    server.route("GET", "/api/v3/user", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/v3")
    assert services.request("billing", "GET", "/user").status_code == 200
    assert services.request("billing", "GET", "user").status_code == 200


def test_run_test_logs_and_checks_expected_status(server, make_integration):
    """reference.md: run_test fires the test request and always logs it."""
    server.route("GET", "/api/health", lambda r: Reply(204))
    make_integration(
        base_url=f"{server.url}/api/",
        log_calls="none",
        test_request={"method": "GET", "path": "health", "expect_status": [200]},
    )
    row = services.run_test("billing")
    assert row.pk and row.is_test and not row.ok and row.status_code == 204
    assert "unexpected status 204" in row.error
    assert HMAC_SECRET not in str(CallLog.objects.values())


# (option, message, the values refused with it)
REFUSED_TOKENS = [
    ("header_name", "not a valid header name", ["X-Token\r\nX-Injected: 1", "X Token"]),
    (
        "header_name",
        "hop-by-hop, routing or cookie",
        ["Host", "transfer-encoding", "Content-Length", "Connection", "Proxy-Authorization",
         "Cookie", "X-Forwarded-Host"],
    ),
    (
        "scheme",
        "not an authentication scheme",
        ["Bearer\r\nHost: evil.example", "Bearer token", "Bé"],
    ),
]


@pytest.mark.parametrize(
    "option,value,message",
    [(option, value, message) for option, message, values in REFUSED_TOKENS for value in values],
)
def test_header_name_and_scheme_are_http_tokens(make_integration, option, value, message):
    """security.md #40 (issue 15, finding 5): header_name is an RFC 9110 token that is
    not a hop-by-hop, routing or cookie header, and scheme is an auth-scheme token, so
    neither can inject a header line or reroute the request; checked like ``headers``."""
    config = {"algorithm": "HS256", "claims": {}, option: value}
    with pytest.raises(ValidationError, match=message) as caught:
        make_integration(auth_config=config)
    assert f"{option}: " in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [
        {"header_name": "X-Api-Token", "scheme": ""},
        {"header_name": "Authorization", "scheme": "JWT"},
    ],
)
def test_custom_header_name_and_scheme_still_work(server, make_integration, config):
    """A credential header of one's own, a bare token or another scheme are still fine."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    make_integration(base_url=f"{server.url}/api/", auth_config={"algorithm": "HS256", **config})
    assert services.request("billing", "GET", "health").status_code == 200
    sent = server.requests[0].headers[config["header_name"]]
    assert sent.startswith(f"{config['scheme']} ey" if config["scheme"] else "ey")


@pytest.mark.parametrize(
    "auth_type,extra",
    [
        ("jwt_bearer", {}),
        ("jwt_grant", {"token_url": "https://idp.example.com/token"}),
        ("client_assertion", {"client_id": "c", "token_url": "https://idp.example.com/token"}),
        ("jwt_exchange", {"exchange_url": "https://idp.example.com/exchange"}),
    ],
)
def test_every_generic_flow_caps_the_lifetime(make_integration, auth_type, extra):
    """security.md #30 (issue 15, finding 2): no flow mints a token for years; the
    generic flows stop at MAX_LIFETIME (an hour), presets at their provider's cap."""
    config = {"algorithm": "HS256", **extra}
    if auth_type != "client_assertion":
        config["claims"] = {}
    make_integration(auth_type=auth_type, auth_config={**config, "lifetime": MAX_LIFETIME})
    with pytest.raises(ValidationError, match=str(MAX_LIFETIME)) as caught:
        make_integration(
            "ten-years", auth_type=auth_type, auth_config={**config, "lifetime": 10 * 365 * 86400}
        )
    assert "lifetime: " in str(caught.value)
