"""Provider presets against loopback emulators of each provider's published rules
(PROVIDERS.md): the preset's token is accepted, the same flow with a rule broken is
refused by the emulator, and the preset refuses that configuration on save."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from integrations import services
from integrations.exceptions import TokenEndpointError
from tests.keys import CANARY, ec_pem, public_pem, rsa_pem
from tests.tokens.emulators import AuthServer, BearerAPI, claims_within, expect

pytestmark = pytest.mark.django_db


def not_after(server_lag: int):
    """iat must not be in the future for a server whose clock is ``server_lag`` s behind."""

    def rule(header, claims, request):
        return "iat is in the future" if claims["iat"] > time.time() - server_lag else None

    return rule


# GitHub App ------------------------------------------------------------------------


def github_emulator(server):
    return AuthServer(
        server,
        verify_key=public_pem(rsa_pem()),
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
    """SECURITY 3: lifetime over 10 min, a non-numeric installation id or a non-RSA key
    is refused on save with a clear message."""
    with pytest.raises(ValidationError, match=message):
        make_integration(
            auth_type="github_app", auth_config=config, secrets={"private_key": secret()}
        )


# Google service account ------------------------------------------------------------


def key_file(token_uri: str, **changes) -> str:
    data = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "8f2c1d",
        "private_key": rsa_pem(),
        "client_email": "robot@demo.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": token_uri,
        **changes,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None})


def google_emulator(server):
    auth = AuthServer(
        server,
        verify_key=public_pem(rsa_pem()),
        algorithm="RS256",
        rules=[
            claims_within(3600, from_iat=True),
            expect(
                header_kid="8f2c1d",
                iss="robot@demo.iam.gserviceaccount.com",
                scope="https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/drive",
            ),
        ],
        form=lambda r: (
            None
            if r.form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            else "grant_type"
        ),
    )
    auth.rules.append(expect(aud=auth.url))
    return auth


SCOPES = ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/drive"]


def test_google_service_account_grant(server, make_integration):
    """Google: kid = private_key_id, iss = client_email, aud = token_uri, scope claim of
    the scopes joined by spaces, optional sub, exp ≤ iat + 1 h."""
    auth = google_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="google_service_account",
        auth_config={"scopes": SCOPES, "subject": "admin@example.com"},
        secrets={"service_account": key_file(auth.url)},
    )
    assert services.request("billing", "GET", "resource").status_code == 200
    _, claims = auth.assertions[0]
    assert claims["sub"] == "admin@example.com" and claims["exp"] - claims["iat"] == 3600


def test_google_emulator_refuses_an_assertion_over_an_hour(server, make_integration):
    """Negative: exp − iat over 3600 s is refused, as Google's token endpoint does."""
    auth = google_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_grant",
        auth_config={
            "algorithm": "RS256",
            "key_id": "8f2c1d",
            "claims": {"iss": "robot@demo.iam.gserviceaccount.com", "scope": " ".join(SCOPES)},
            "lifetime": 3600,
            "clock_skew": 30,
            "token_url": auth.url,
        },
        secrets={"key": rsa_pem()},
    )
    with pytest.raises(TokenEndpointError, match="too far in the future"):
        services.request("billing", "GET", "resource")


@pytest.mark.parametrize(
    "secret,config,message",
    [
        ("not json " + CANARY, {"scopes": SCOPES}, "is not JSON"),
        (
            key_file("https://oauth2.googleapis.com/token", client_email=None),
            {"scopes": SCOPES},
            "no client_email",
        ),
        (
            key_file("https://oauth2.googleapis.com/token", type="authorized_user"),
            {"scopes": SCOPES},
            "not a service_account",
        ),
        (
            key_file("https://oauth2.googleapis.com/token", private_key=ec_pem()),
            {"scopes": SCOPES},
            "needs an RSA private key",
        ),
        (key_file("ftp://oauth2.googleapis.com/token"), {"scopes": SCOPES}, "token_uri"),
        (key_file("https://oauth2.googleapis.com/token"), {"scopes": []}, "scope"),
        (
            key_file("https://oauth2.googleapis.com/token"),
            {"scopes": SCOPES, "lifetime": 3600},
            "at most 3600",
        ),
    ],
)
def test_google_key_file_is_validated_on_save(make_integration, secret, config, message):
    """A malformed key file, wrong key type, bad token_uri, no scopes or a lifetime past
    Google's hour is refused on save; the message never quotes the file."""
    with pytest.raises(ValidationError, match=message) as caught:
        make_integration(
            auth_type="google_service_account",
            auth_config=config,
            secrets={"service_account": secret},
        )
    assert CANARY not in str(caught.value) and "BEGIN" not in str(caught.value)


# App Store Connect -------------------------------------------------------------------


def app_store_emulator(server):
    return BearerAPI(
        server,
        verify_key=public_pem(ec_pem()),
        algorithm="ES256",
        path="/v1/apps",
        rules=[
            claims_within(1200),
            expect(
                header_kid="2X9R4HXF34",
                header_typ="JWT",
                iss="69a6de70-03db",
                aud="appstoreconnect-v1",
            ),
        ],
    )


def test_app_store_connect_token_is_accepted(server, make_integration):
    """App Store Connect: ES256 on P-256, kid = key ID, typ JWT, iss = issuer ID, aud
    appstoreconnect-v1, exp ≤ 20 min."""
    api = app_store_emulator(server)
    make_integration(
        base_url=server.url,
        auth_type="app_store_connect",
        auth_config={"issuer_id": "69a6de70-03db", "key_id": "2X9R4HXF34"},
        secrets={"private_key": ec_pem()},
    )
    assert services.request("billing", "GET", "/v1/apps").status_code == 200
    assert len(api.accepted) == 1


def test_app_store_emulator_refuses_a_token_over_20_minutes(server, make_integration):
    """Negative: the same token with exp 30 min ahead is refused (401)."""
    app_store_emulator(server)
    make_integration(
        base_url=server.url,
        auth_config={
            "algorithm": "ES256",
            "key_id": "2X9R4HXF34",
            "claims": {"iss": "69a6de70-03db", "aud": "appstoreconnect-v1"},
            "lifetime": 1800,
        },
        secrets={"key": ec_pem()},
    )
    response = services.request("billing", "GET", "/v1/apps")
    assert response.status_code == 401 and "too far" in response.text


@pytest.mark.parametrize(
    "config,secret,message",
    [
        ({"lifetime": 1300}, ec_pem, "at most 1200"),
        ({}, rsa_pem, "needs an EC private key"),
        ({}, lambda: ec_pem("P-384"), "secp256r1"),
    ],
)
def test_app_store_connect_rules_are_enforced_on_save(make_integration, config, secret, message):
    """SECURITY 2-3: over 20 minutes, an RSA key or a P-384 key is refused on save."""
    with pytest.raises(ValidationError, match=message):
        make_integration(
            auth_type="app_store_connect",
            auth_config={"issuer_id": "i", "key_id": "K1", **config},
            secrets={"private_key": secret()},
        )


def self_signed_emulator(server):
    email = "robot@demo.iam.gserviceaccount.com"
    return BearerAPI(
        server,
        verify_key=public_pem(rsa_pem()),
        algorithm="RS256",
        path="/v1/projects/demo/topics",
        rules=[
            claims_within(3600, from_iat=True),
            expect(header_kid="8f2c1d", iss=email, sub=email, aud="https://pubsub.googleapis.com/"),
        ],
    )


def test_google_self_signed_jwt_goes_straight_to_the_api(server, make_integration):
    """Google self-signed JWT: iss = sub = client_email, aud = the service URL, kid =
    private_key_id, ≤ 1 h after iat, sent as Bearer with no token endpoint involved."""
    api = self_signed_emulator(server)
    make_integration(
        base_url=server.url,
        auth_type="google_self_signed_jwt",
        auth_config={"audience": "https://pubsub.googleapis.com/"},
        secrets={"service_account": key_file("https://oauth2.googleapis.com/token")},
    )
    assert services.request("billing", "GET", "/v1/projects/demo/topics").status_code == 200
    assert len(api.accepted) == 1 and len(server.requests) == 1


def test_google_self_signed_emulator_refuses_another_audience(server, make_integration):
    """Negative: aud without the service URL's exact form is refused (401)."""
    self_signed_emulator(server)
    email = "robot@demo.iam.gserviceaccount.com"
    make_integration(
        base_url=server.url,
        auth_config={
            "algorithm": "RS256",
            "key_id": "8f2c1d",
            "claims": {"iss": email, "sub": email, "aud": "https://pubsub.googleapis.com"},
        },
        secrets={"key": rsa_pem()},
    )
    assert services.request("billing", "GET", "/v1/projects/demo/topics").status_code == 401


@pytest.mark.parametrize(
    "config",
    [{}, {"audience": "https://pubsub.googleapis.com/", "scopes": SCOPES}],
    ids=["neither", "both"],
)
def test_google_self_signed_needs_audience_or_scopes(make_integration, config):
    """Exactly one of audience and scopes: Google reads one or the other."""
    with pytest.raises(ValidationError, match="either an audience or scopes"):
        make_integration(
            auth_type="google_self_signed_jwt",
            auth_config=config,
            secrets={"service_account": key_file("https://oauth2.googleapis.com/token")},
        )
