"""Minting rules at the signing layer (security.md #1-4), checked with joserfc."""

from __future__ import annotations

import secrets

import pytest

from integrations.exceptions import InvalidConfiguration, TokenError
from integrations.tokens.jws import JWTSigner as Signer
from integrations.tokens.signing import ALGORITHMS, load_signing_key, standard_claims
from tests import jose
from tests.keys import HMAC_SECRET, ec_pem, key_for, rsa_pem, verify_key_for
from tests.loopback import Reply


@pytest.mark.parametrize("name", ["alg", "ALG", "jku", "jwk", "x5u", "x5c", "crit", "b64"])
def test_header_fields_that_redirect_verification_are_refused(name):
    """security.md #1: extra header fields cannot set alg (PyJWT would let them win) nor
    point verifiers at other keys (jku/jwk/x5u/x5c) or change processing (crit/b64)."""
    with pytest.raises(InvalidConfiguration, match=name):
        Signer("HS256", HMAC_SECRET, extra_headers={name: "none"})


def test_none_is_not_an_algorithm():
    """security.md #1: `none` is not on the allowlist."""
    assert "none" not in ALGORITHMS
    with pytest.raises(InvalidConfiguration, match="not allowed"):
        load_signing_key("none", HMAC_SECRET)


@pytest.mark.parametrize(
    "algorithm,material,message",
    [
        ("RS256", ec_pem, "needs an RSA private key; this is an EC key"),
        ("ES256", rsa_pem, "needs an EC private key"),
        ("ES384", ec_pem, "secp384r1"),
        ("HS256", lambda: "short-secret-0123456789", "at least 32 bytes"),
        ("HS512", lambda: HMAC_SECRET[:40] + "x" * 24, None),
        ("HS256", rsa_pem, "not a PEM key"),
        ("EdDSA", rsa_pem, "Ed25519 or Ed448"),
    ],
)
def test_wrong_keys_fail_with_a_clear_message(algorithm, material, message):
    """security.md #2-3: a key of the wrong type or strength is refused with a message that
    says what is wrong (PyJWT would raise a bare TypeError) and never quotes the key."""
    if message is None:
        load_signing_key(algorithm, material())
        return
    with pytest.raises(InvalidConfiguration, match=message) as caught:
        load_signing_key(algorithm, material())
    assert "BEGIN" not in str(caught.value)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_header_alg_always_matches_and_claims_are_integers(algorithm):
    """security.md #1, #4: alg is the configured one, typ JWT, kid as given; iat/exp/nbf are
    integer epoch seconds, iat backdated by the clock skew, a uuid4 jti when asked."""
    signer = Signer(algorithm, key_for(algorithm), key_id="k9", extra_headers={"cty": "x"})
    claims = standard_claims(
        {"iss": "a", "nbf": True, "jti": True}, lifetime=60, clock_skew=30, now=1000.7
    )
    header, decoded = jose.verify(signer.sign(claims), verify_key_for(algorithm), algorithm)
    assert header == {"alg": algorithm, "typ": "JWT", "kid": "k9", "cty": "x"}
    assert decoded["iat"] == decoded["nbf"] == 970 and decoded["exp"] == 1060
    assert len(decoded["jti"]) == 36 and decoded["iss"] == "a"


@pytest.mark.django_db
def test_oversized_token_answer_is_refused(server, make_integration):
    """security.md #17: a token answer far larger than any token is refused, not parsed."""
    from integrations import services

    server.route(
        "POST", "/token", lambda r: Reply(200, b'{"access_token": "' + b"a" * 300_000 + b'"}')
    )
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_grant",
        auth_config={"algorithm": "HS256", "claims": {}, "token_url": f"{server.url}/token"},
    )
    with pytest.raises(TokenError, match="oversized"):
        services.request("billing", "GET", "x")


@pytest.mark.django_db
def test_secrets_are_hidden_from_django_error_reports(make_integration, rf):
    """security.md #26: a failure inside minting or a preset's mapping, rendered by Django's
    error reporter (DEBUG page, admin e-mails), does not show the key."""
    import sys

    from django.views.debug import ExceptionReporter

    from integrations.tokens.presets.github import GitHubAppProvider

    integration = make_integration(
        auth_type="github_app",
        auth_config={"app_id": "1", "installation_id": "42"},
        secrets={"private_key": rsa_pem()},
    )
    try:
        GitHubAppProvider(integration, {"private_key": rsa_pem(), "app_id": "1"})
    except KeyError:
        reporter = ExceptionReporter(rf.get("/"), *sys.exc_info())
        frames = reporter.get_traceback_frames()
    shown = {frame["function"]: dict(frame["vars"]) for frame in frames}
    assert shown["map_options"]["options"] == "********************"
    key_line = rsa_pem().splitlines()[2]
    app_frames = [frame for frame in frames if "/integrations/" in frame["filename"]]
    assert app_frames and not any(key_line in str(frame["vars"]) for frame in app_frames)


@pytest.mark.parametrize(
    "secret,why",
    [
        ("abcdefgh" * 4, "8-byte pattern repeated"),
        ("0123456789" * 4, "10-byte pattern repeated"),
        ("Xy7!Qz9#" * 4 + "Xy7", "8-byte pattern repeated"),
        ("abcdefgh" * 4 + "x", "repeats of itself"),
        ("abcdefghijklmnopqrstuvwxyz012345", "evenly spaced"),
        ("ab" * 16 + "cdefghij" * 2, "repeats of itself"),
        ("a" * 64, "fewer than 8 distinct bytes"),
    ],
)
def test_hmac_secrets_with_obvious_patterns_are_refused(secret, why):
    """security.md #2 (issue 15, finding 7): an HMAC secret must be random, not only long
    with 8 distinct bytes: a repeated pattern, a run of sequential bytes or text that
    mostly repeats itself is refused, saying how and never quoting it."""
    with pytest.raises(InvalidConfiguration, match=f"not random enough.*{why}") as caught:
        load_signing_key("HS256", secret)
    assert secret[:8] not in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_hex(16),
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_hex(32),
        lambda: "correct horse battery staple 1234",
    ],
    ids=["hex16", "urlsafe32", "hex32", "passphrase"],
)
def test_random_hmac_secrets_pass_the_pattern_check(make):
    """Generated secrets (hex, base64) and a long passphrase are never refused."""
    for _ in range(200):
        load_signing_key("HS256", make())
