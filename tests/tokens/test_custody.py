"""Token providers sign through key custody (tokens/custody.py, tokens/jws.py): one
signer per process per (integration, key version), reused by every provider built for
it; the kid is key_id or the RFC 7638 thumbprint, in the header with key_id or send_kid."""

from __future__ import annotations

import threading

import pytest

from integrations.exceptions import InvalidConfiguration
from integrations.signers.base import jwk_thumbprint
from integrations.signers.local import LocalSigner
from integrations.tokens import build_provider
from integrations.tokens.custody import (
    exported_auth,
    key_signer,
    move_signer_pin,
    signer_cache,
    signer_problems,
)
from integrations.tokens.jws import JWTSigner
from tests import jose
from tests.keys import HMAC_SECRET, ec_pem, public_pem, rsa_pem

pytestmark = pytest.mark.django_db


def es256(make_integration, slug="billing", **config):
    return make_integration(
        slug,
        auth_type="jwt_bearer",
        auth_config={"algorithm": "ES256", "claims": {}, **config},
        secrets={"key": ec_pem()},
    )


def test_providers_of_one_key_share_one_signer(make_integration):
    integration = es256(make_integration)
    first, second = build_provider(integration), build_provider(integration)
    assert first.signer.custody is second.signer.custody
    assert isinstance(first.signer.custody, LocalSigner)
    other = es256(make_integration, "other")
    assert build_provider(other).signer.custody is not first.signer.custody
    integration.set_secrets({"key": ec_pem("P-384")})
    integration.auth_config = {**integration.auth_config, "algorithm": "ES384"}
    assert build_provider(integration).signer.custody is not first.signer.custody


def test_threads_building_the_same_signer_get_one():
    signer_cache.clear()
    found: list[object] = []
    material = rsa_pem()

    def build() -> None:
        found.append(key_signer("threads", "RS256", material=material))

    threads = [threading.Thread(target=build) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16 and len({id(signer) for signer in found}) == 1


def test_the_cache_is_bounded():
    signer_cache.clear()
    size, signer_cache.size = signer_cache.size, 3
    try:
        for n in range(5):
            key_signer(f"owner-{n}", "HS256", material=HMAC_SECRET)
        assert len(signer_cache.signers()) == 3
    finally:
        signer_cache.size = size


@pytest.mark.parametrize(
    ("key_id", "send_kid", "header_kid"),
    [("", False, None), ("k9", False, "k9"), ("", True, "thumbprint"), ("k9", True, "k9")],
)
def test_kid_in_the_header(key_id, send_kid, header_kid):
    signer = JWTSigner("ES256", ec_pem(), key_id=key_id, send_kid=send_kid)
    header, _ = jose.verify(signer.sign({"iss": "a"}), public_pem(ec_pem()), "ES256")
    thumbprint = jwk_thumbprint(signer.public_jwk or {})
    assert header.get("kid") == (thumbprint if header_kid == "thumbprint" else header_kid)
    assert signer.kid == (key_id or thumbprint)
    assert (signer.public_jwk or {})["kid"] == signer.kid


def test_a_shared_secret_has_no_kid_unless_configured():
    signer = JWTSigner("HS256", HMAC_SECRET, send_kid=True)
    assert signer.kid == "" and "kid" not in signer.headers and signer.public_jwk is None


def test_the_preview_shows_the_kid_a_token_will_carry(make_integration):
    integration = es256(make_integration, send_kid=True)
    provider = build_provider(integration)
    assert provider.preview()["header"]["kid"] == provider.signer.kid


@pytest.mark.parametrize(
    ("config", "algorithm", "pin", "message"),
    [
        ("pkcs11", "RS256", "1234", "must be a JSON object"),
        ({"type": "tpm"}, "RS256", "", "type must be one of pkcs11, aws_kms"),
        ({"type": "aws_kms"}, "RS256", "", "needs key_id"),
        ({"type": "aws_kms", "key_id": "k", "pin": "x"}, "RS256", "", "the PIN is a secret"),
        ({"type": "aws_kms", "key_id": "k", "color": 1}, "RS256", "", "unknown setting(s) color"),
        ({"type": "aws_kms", "key_id": "k"}, "HS256", "", "signs with a shared secret"),
        ({"type": "aws_kms", "key_id": "k"}, "EdDSA", "", "cannot sign EdDSA"),
        ({"type": "aws_kms", "key_id": "k"}, "RS256", "1234", "takes no PIN"),
        ({"type": "aws_kms", "key_id": "k", "endpoint_url": "ftp://x"}, "RS256", "", "endpoint"),
        ({"type": "pkcs11", "module": "lib.so", "token_label": "t", "key_label": "k"}, "RS256",
         "1", "absolute path"),
        ({"type": "pkcs11", "module": "/l.so", "token_label": "t", "key_label": "k"}, "RS256",
         "", "needs the token's PIN"),
    ],
)
def test_signer_settings_are_checked(config, algorithm, pin, message):
    problems = signer_problems(config, algorithm, pin)
    assert any(message in text for _, text in problems), problems


def test_the_configuration_file_gives_the_pin_inside_the_signer():
    """signer.pin becomes the signer_pin secret; a top-level signer_pin is refused (null,
    as an older export wrote it, is dropped)."""
    auth = {"signer": {"type": "pkcs11", "pin": {"env": "HSM_PIN"}}, "signer_pin": None}
    moved = move_signer_pin(auth, "hsm")
    assert moved == {"signer": {"type": "pkcs11"}, "signer_pin": {"env": "HSM_PIN"}}
    with pytest.raises(InvalidConfiguration, match="as signer.pin"):
        move_signer_pin({"signer_pin": "1234"}, "hsm")
    shown = exported_auth(("key", "signer_pin"), {"signer": {"type": "pkcs11"}})
    assert shown == {"signer": {"type": "pkcs11", "pin": None}, "key": None}
