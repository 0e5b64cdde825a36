"""The Google presets (service account grant, self-signed JWT) against loopback
emulators of Google's published rules (PROVIDERS.md): their tokens are accepted, the
same flow with a rule broken is refused, and the presets refuse that configuration on
save."""

from __future__ import annotations

import pytest

from integrations import services
from integrations.exceptions import TokenEndpointError
from tests.keys import CANARY, ec_pem, rsa_pem
from tests.tokens.emulators import (
    SCOPES,
    AuthServer,
    BearerAPI,
    claims_within,
    expect,
    generic_bearer,
    key_file,
    refused_on_save,
)

pytestmark = pytest.mark.django_db


def google_emulator(server):
    auth = AuthServer(
        server,
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


def self_signed_emulator(server):
    email = "robot@demo.iam.gserviceaccount.com"
    return BearerAPI(
        server,
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
    generic_bearer(
        make_integration,
        server,
        "RS256",
        key_id="8f2c1d",
        claims={"iss": email, "sub": email, "aud": "https://pubsub.googleapis.com"},
    )
    assert services.request("billing", "GET", "/v1/projects/demo/topics").status_code == 401


TOKEN_URI = "https://oauth2.googleapis.com/token"


@pytest.mark.parametrize(
    "auth_type,secret,config,message",
    [
        ("google_service_account", "not json " + CANARY, {"scopes": SCOPES}, "is not JSON"),
        (
            "google_service_account",
            key_file(TOKEN_URI, client_email=None),
            {"scopes": SCOPES},
            "no client_email",
        ),
        (
            "google_service_account",
            key_file(TOKEN_URI, type="authorized_user"),
            {"scopes": SCOPES},
            "not a service_account",
        ),
        (
            "google_service_account",
            key_file(TOKEN_URI, private_key=ec_pem()),
            {"scopes": SCOPES},
            "needs an RSA private key",
        ),
        (
            "google_service_account",
            key_file("ftp://oauth2.googleapis.com/token"),
            {"scopes": SCOPES},
            "token_uri",
        ),
        ("google_service_account", key_file(TOKEN_URI), {"scopes": []}, "scope"),
        (
            "google_service_account",
            key_file(TOKEN_URI),
            {"scopes": SCOPES, "lifetime": 3600},
            "at most 3600",
        ),
        ("google_self_signed_jwt", key_file(TOKEN_URI), {}, "either an audience or scopes"),
        (
            "google_self_signed_jwt",
            key_file(TOKEN_URI),
            {"audience": "https://pubsub.googleapis.com/", "scopes": SCOPES},
            "either an audience or scopes",
        ),
    ],
    ids=[
        "not-json",
        "no-client-email",
        "not-service-account",
        "ec-key",
        "ftp-token-uri",
        "no-scopes",
        "over-an-hour",
        "self-signed-neither",
        "self-signed-both",
    ],
)
def test_google_key_file_and_options_are_validated_on_save(
    make_integration, auth_type, secret, config, message
):
    """A malformed key file, wrong key type, bad token_uri, no scopes or a lifetime past
    Google's hour is refused on save; the self-signed JWT needs exactly one of audience
    and scopes (Google reads one or the other). The message never quotes the file."""
    text = refused_on_save(
        make_integration, auth_type, config, {"service_account": secret}, message
    )
    assert CANARY not in text and "BEGIN" not in text
