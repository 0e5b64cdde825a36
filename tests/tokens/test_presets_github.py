"""The GitHub App preset against a loopback emulator of GitHub's published rules
(PROVIDERS.md): its token is accepted, the same flow with a rule broken is refused by
the emulator, and the preset refuses that configuration on save."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from integrations import services
from integrations.exceptions import TokenEndpointError
from tests.keys import ec_pem, rsa_pem
from tests.tokens.emulators import AuthServer, claims_within, expect, not_after, refused_on_save

pytestmark = pytest.mark.django_db


def github_emulator(server):
    return AuthServer(
        server,
        algorithm="RS256",
        rules=[claims_within(600), expect(iss="Iv1.abc123", header_alg="RS256"), not_after(50)],
        path="/api/v3/app/installations/42/access_tokens",
        answer=lambda token, ttl: {
            "token": token,
            "expires_at": datetime.fromtimestamp(time.time() + 3600, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        },
    )


def test_github_app_exchanges_for_an_installation_token(server, make_integration):
    """GitHub App: RS256, iss = app id, iat backdated 60 s (accepted by a server whose
    clock is 50 s behind), exp ≤ 10 min; installation token from
    POST {base_url}/app/installations/{id}/access_tokens, then reused as Bearer."""
    auth = github_emulator(server)
    server.route("GET", "/api/v3/repos", auth.resource)
    make_integration(
        base_url=f"{server.url}/api/v3",
        auth_type="github_app",
        auth_config={"app_id": "Iv1.abc123", "installation_id": "42"},
        secrets={"private_key": rsa_pem()},
    )
    for _ in range(2):
        assert services.request("billing", "GET", "/repos").status_code == 200
    assert auth.mints == 1
    _, claims = auth.assertions[0]
    assert claims["exp"] - claims["iat"] == 540 + 60


@pytest.mark.parametrize(
    "lifetime,skew,reason",
    [(900, 60, "too far in the future"), (300, 0, "iat is in the future")],
)
def test_github_emulator_refuses_broken_rules(server, make_integration, lifetime, skew, reason):
    """Negative: exp 15 min ahead, or iat not backdated, is refused as GitHub would."""
    github_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/v3",
        auth_type="jwt_exchange",
        auth_config={
            "algorithm": "RS256",
            "claims": {"iss": "Iv1.abc123"},
            "lifetime": lifetime,
            "clock_skew": skew,
            "exchange_url": f"{server.url}/api/v3/app/installations/42/access_tokens",
        },
        secrets={"key": rsa_pem()},
    )
    with pytest.raises(TokenEndpointError, match=reason):
        services.request("billing", "GET", "/repos")


@pytest.mark.parametrize(
    "config,secret,message",
    [
        ({"app_id": "1", "installation_id": "42", "lifetime": 700}, rsa_pem, "at most 600"),
        ({"app_id": "1", "installation_id": "4x2"}, rsa_pem, "installation_id"),
        ({"app_id": "1", "installation_id": "42"}, ec_pem, "needs an RSA private key"),
    ],
)
def test_github_app_rules_are_enforced_on_save(make_integration, config, secret, message):
    """security.md #3: lifetime over 10 min, a non-numeric installation id or a non-RSA
    key is refused on save with a clear message."""
    refused_on_save(make_integration, "github_app", config, {"private_key": secret()}, message)
