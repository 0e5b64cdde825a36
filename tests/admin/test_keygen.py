"""Key-pair generation: keys of each kind that sign what they claim, public halves that
another JOSE library (jwcrypto) reads the same way, and no private key in repr."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk as jwcrypto_jwk

from integrations import keypairs
from integrations.exceptions import InvalidConfiguration
from integrations.tokens.jws import JWTSigner as Signer
from tests import jose
from tests.keys import CANARY, HMAC_SECRET

# Each kind of key pair the admin generates: the algorithm it signs by default, its JWK kty.
KINDS = [
    ("rsa-2048", "RS256", "RSA"),
    ("rsa-3072", "RS256", "RSA"),
    ("ec-p256", "ES256", "EC"),
    ("ec-p384", "ES384", "EC"),
    ("ed25519", "EdDSA", "OKP"),
]


@pytest.mark.parametrize(("kind", "algorithm", "kty"), KINDS)
def test_generated_pair_signs_and_publishes(kind, algorithm, kty):
    """security.md #2: each kind makes a key of the right size/curve; a token it signs
    verifies (joserfc) with the public PEM; the JWK and its RFC 7638 thumbprint match
    jwcrypto's reading of that PEM."""
    pair = keypairs.generate(kind)
    assert pair.algorithm == algorithm
    key = serialization.load_pem_private_key(pair.private_pem.encode(), password=None)
    if kty == "RSA":
        assert key.key_size == int(kind.split("-")[1])
    token = Signer(algorithm, pair.private_pem).sign({"iss": "shop"})
    _, claims = jose.verify(token, pair.public.pem, algorithm)
    assert claims == {"iss": "shop"}
    reference = jwcrypto_jwk.JWK.from_pem(pair.public.pem.encode())
    assert pair.public.thumbprint == reference.thumbprint()
    assert pair.public.jwk["kty"] == kty and pair.public.jwk["kid"] == pair.public.thumbprint
    assert pair.public.jwk["alg"] == algorithm and pair.public.jwk["use"] == "sig"
    public_members = {k: v for k, v in reference.export_public(as_dict=True).items() if k != "kid"}
    assert public_members.items() <= pair.public.jwk.items()
    assert "d" not in pair.public.jwk
    assert "PRIVATE" not in repr(pair) and pair.private_pem not in repr(pair)


def test_public_key_uses_the_configured_kid():
    """A configured key_id becomes the JWK's kid, as it is the token's kid header."""
    pair = keypairs.generate("ec-p256")
    assert keypairs.public_key("ES256", pair.private_pem, "k-2026").jwk["kid"] == "k-2026"


def test_unknown_kind_is_refused_by_name():
    """A typo names the kinds that exist, without a traceback."""
    with pytest.raises(
        InvalidConfiguration, match="unknown key type 'rsa-1024'; use one of rsa-2048"
    ):
        keypairs.generate("rsa-1024")


def test_shared_secret_has_no_public_key():
    """Asking for an HMAC secret's public key is a clear error, never the secret back."""
    with pytest.raises(InvalidConfiguration) as caught:
        keypairs.public_key("HS256", HMAC_SECRET)
    assert "has no public key" in str(caught.value) and CANARY not in str(caught.value)


@pytest.mark.parametrize(("kind", "algorithm", "kty"), KINDS)
def test_usual_algorithm_reads_the_key_type(kind, algorithm, kty):
    """Presets without an algorithm option still get fingerprints and public keys."""
    assert keypairs.usual_algorithm(keypairs.generate(kind).private_pem) == algorithm
    assert keypairs.usual_algorithm("not a key") is None
