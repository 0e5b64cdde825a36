"""integrations_token: a fresh token's decoded header and claims, never the token
itself unless --reveal (which warns)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests import jose
from tests.commands.helpers import manage
from tests.keys import CANARY, HMAC_SECRET, key_for, verify_key_for
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


def test_jwt_bearer_shows_header_and_claims_not_the_token(make_integration):
    """security.md #26: the output decodes the token but holds neither it nor its signature."""
    make_integration(auth_config={"algorithm": "ES256", "key_id": "k9",
                                  "claims": {"iss": "shop", "aud": "billing", "jti": True}},
                     secrets={"key": key_for("ES256")})
    ran = manage("integrations_token", "billing")
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert report["format"] == "jwt" and "token" not in report
    assert report["header"] == {"alg": "ES256", "typ": "JWT", "kid": "k9"}
    assert report["claims"]["iss"] == "shop" and report["jti"] == report["claims"]["jti"]
    assert 0 < report["expires_in"] <= 300 and report["kid"] == "k9"
    assert "eyJ" not in ran.out + ran.err


def test_reveal_prints_a_verifiable_token_and_warns(make_integration):
    """--reveal adds the token (it verifies with joserfc) and a warning on stderr."""
    make_integration(auth_config={"algorithm": "RS256", "claims": {"aud": "billing"}},
                     secrets={"key": key_for("RS256")})
    ran = manage("integrations_token", "billing", "--reveal")
    report = json.loads(ran.out)
    header, claims = jose.verify(report["token"], verify_key_for("RS256"), "RS256")
    assert claims == report["claims"] and "WARNING" in ran.err and "live credential" in ran.err


def test_per_request_token_is_the_one_for_the_test_request(make_integration):
    """A flow that signs each request (Atlassian Connect's qsh) shows the token for the
    integration's test request: its method, and its path relative to base_url."""
    make_integration(
        base_url="http://127.0.0.1:9/wiki",
        auth_type="atlassian_connect",
        auth_config={"app_key": "com.example.app"},
        secrets={"shared_secret": HMAC_SECRET},
        test_request={"method": "post", "path": "rest/api/content?limit=5"},
    )
    ran = manage("integrations_token", "billing")
    assert ran.code == 0, ran.err
    canonical = "POST&/rest/api/content&limit=5"
    assert json.loads(ran.out)["claims"]["qsh"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_grant_flow_fetches_a_fresh_access_token(server, make_integration):
    """For a token endpoint flow the command obtains a new access token (one POST) and,
    the token being opaque, shows the assertion it signs instead."""
    answer = {"access_token": "opaque-abc", "expires_in": 900}
    server.route("POST", "/token", lambda r: Reply(200, answer))
    make_integration(
        base_url=f"{server.url}/api/", auth_type="jwt_grant",
        auth_config={"algorithm": "HS256", "claims": {"iss": "shop"},
                     "token_url": f"{server.url}/token"},
    )
    ran = manage("integrations_token", "billing")
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert report["format"] == "opaque" and 890 <= report["expires_in"] <= 900
    assert report["assertion"]["claims"]["aud"] == f"{server.url}/token"
    assert "opaque-abc" not in ran.out and len(server.calls("POST", "/token")) == 1
    jose.verify(server.calls("POST", "/token")[0].form["assertion"], HMAC_SECRET, "HS256")


def test_refusing_token_endpoint_exits_1_with_a_clean_line(server, make_integration):
    """A token endpoint refusal exits 1 with its OAuth error, no traceback, no secret."""
    refusal = {"error": "invalid_grant", "error_description": "bad iss"}
    server.route("POST", "/token", lambda r: Reply(400, refusal))
    make_integration(
        base_url=f"{server.url}/api/", auth_type="jwt_grant",
        auth_config={"algorithm": "HS256", "claims": {}, "token_url": f"{server.url}/token"},
    )
    ran = manage("integrations_token", "billing")
    assert ran.code == 1 and "invalid_grant" in ran.err
    assert "Traceback" not in ran.err and CANARY not in ran.err and ran.out == ""


def test_unknown_slug_exits_2_and_undecryptable_exits_1(make_integration, settings):
    """Unknown slug is a usage error (2); a secret the key ring cannot read fails (1)."""
    make_integration()
    assert manage("integrations_token", "nope").code == 2
    settings.INTEGRATIONS_ENCRYPTION_KEYS = ["b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktISE="]
    ran = manage("integrations_token", "billing")
    assert ran.code == 1 and "INTEGRATIONS_ENCRYPTION_KEYS" in ran.err
    assert "Traceback" not in ran.err
