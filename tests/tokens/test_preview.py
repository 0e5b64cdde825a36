"""The preview API the admin builds on: header and claims of the next token, the
public half of the key, never a signature or a secret."""

from __future__ import annotations

import hashlib
import json

import pytest
from jwcrypto import jwk as jwcrypto_jwk

from integrations.tokens import preview, public_key_info
from integrations.tokens.preview import claim_times
from tests.keys import CANARY, HMAC_SECRET, ec_pem, public_pem, rsa_pem

pytestmark = pytest.mark.django_db


def test_preview_shows_header_and_claims_without_signature(make_integration):
    """security.md #1, #4, #29: alg/kid/typ and the claims of the next token, nothing secret."""
    integration = make_integration(
        auth_config={"algorithm": "HS256", "key_id": "k1", "claims": {"iss": "shop", "jti": True}},
    )
    shown = preview(integration)
    assert shown["auth_type"] == "jwt_bearer"
    assert shown["header"] == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    claims = shown["claims"]
    assert claims["iss"] == "shop" and claims["exp"] - claims["iat"] == 300 + 30
    assert len(claims["jti"]) == 36
    assert CANARY not in json.dumps(shown) and "eyJ" not in json.dumps(shown)


def test_preview_of_a_preset_shows_the_mapped_claims(make_integration):
    """A preset's preview shows the provider's claims (App Store Connect: aud, kid, ES256)."""
    integration = make_integration(
        auth_type="app_store_connect",
        auth_config={"issuer_id": "69a6de70-03db", "key_id": "2X9R4HXF34"},
        secrets={"private_key": ec_pem()},
    )
    shown = preview(integration)
    assert shown["header"] == {"alg": "ES256", "typ": "JWT", "kid": "2X9R4HXF34"}
    assert shown["claims"]["aud"] == "appstoreconnect-v1"
    assert shown["claims"]["iss"] == "69a6de70-03db"


def test_preview_of_a_per_request_token_covers_the_test_request(make_integration):
    """A flow that signs each request (Atlassian Connect's qsh) is previewed for the
    integration's test request: its method, and its path relative to base_url."""
    integration = make_integration(
        base_url="http://127.0.0.1:9/wiki",
        auth_type="atlassian_connect",
        auth_config={"app_key": "com.example.app"},
        secrets={"shared_secret": HMAC_SECRET},
        test_request={"method": "post", "path": "rest/api/content?limit=5"},
    )
    shown = preview(integration)
    canonical = "POST&/rest/api/content&limit=5"
    assert shown["claims"]["qsh"] == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize("algorithm,material", [("RS256", rsa_pem), ("ES256", ec_pem)])
def test_public_key_info_matches_jwcrypto(make_integration, algorithm, material):
    """The public PEM, JWK and RFC 7638 thumbprint agree with jwcrypto's; no private part."""
    integration = make_integration(
        auth_config={"algorithm": algorithm, "key_id": "main", "claims": {}},
        secrets={"key": material()},
    )
    info = public_key_info(integration)
    assert info is not None
    assert info["pem"] == public_pem(material())
    reference = jwcrypto_jwk.JWK.from_pem(info["pem"].encode())
    assert info["thumbprint"] == reference.thumbprint()
    assert info["jwk"]["kid"] == "main" and info["jwk"]["alg"] == algorithm
    assert "d" not in info["jwk"] and "PRIVATE" not in info["pem"]


def test_public_key_info_is_none_for_a_shared_secret(make_integration):
    """security.md #29: an HMAC secret has no public half, so nothing is shown."""
    integration = make_integration(secrets={"key": HMAC_SECRET})
    assert public_key_info(integration) is None


@pytest.mark.parametrize("value", [1e20, -1e20, 253402300800])
def test_preview_of_a_claim_time_no_calendar_holds_does_not_raise(make_integration, value):
    """Issue 15, finding 7: a claim like {"nbf": 1e20} made the admin's preview page
    answer 500; the preview's times show such a value as the raw number instead."""
    integration = make_integration(
        auth_config={"algorithm": "HS256", "claims": {"iss": "shop", "nbf": value}}
    )
    times = dict(preview(integration)["times"])
    assert times["nbf"].startswith(repr(value)) and "not a time" in times["nbf"]
    assert times["iat"].endswith("s ago)") and "UTC" in times["exp"]


def test_claim_times_are_utc_and_relative():
    """iat/nbf/exp as UTC and seconds from now; other claims and booleans ignored."""
    shown = claim_times({"iat": 0, "exp": 60, "nbf": True, "aud": 5}, now=30)
    assert shown == [
        ("iat", "1970-01-01 00:00:00 UTC (30 s ago)"),
        ("exp", "1970-01-01 00:01:00 UTC (in 30 s)"),
    ]
