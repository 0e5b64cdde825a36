"""The signer base and the local signer: JWS assembly, DER -> R||S, public JWKs from an
allowlist (security.md #32, #33)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import import_key

from integrations.exceptions import InvalidConfiguration, SigningError
from integrations.signers import public_jwk_of, public_members, sign_jwt
from integrations.signers.base import ALGORITHMS, der_to_raw, jwk_thumbprint
from integrations.signers.local import LocalSigner
from tests.keys import CANARY, HMAC_SECRET, ec_pem, ed25519_pem, key_for, rsa_pem
from tests.signers.verify import PRIVATE_MEMBERS, assert_public, verify

CLAIMS = {"iss": "app", "sub": "someone", "iat": 1700000000, "exp": 1700000300}
LOCAL_ALGORITHMS = [alg for alg in ALGORITHMS if not alg.startswith("HS")]


def _material(algorithm: str) -> str:
    return ed25519_pem() if algorithm == "Ed25519" else key_for(algorithm)


@pytest.mark.parametrize("algorithm", LOCAL_ALGORITHMS)
def test_local_signer_tokens_verify_with_its_public_jwk(algorithm: str) -> None:
    signer = LocalSigner(algorithm, _material(algorithm), kid="k1")
    token = sign_jwt(signer, CLAIMS, {"kid": "k1"})
    header, claims = verify(token, signer.public_jwk(), algorithm)
    assert claims == CLAIMS
    assert header == {"alg": algorithm, "typ": "JWT", "kid": "k1"}


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_verify_and_there_is_no_public_key(algorithm: str) -> None:
    signer = LocalSigner(algorithm, HMAC_SECRET)
    token = sign_jwt(signer, CLAIMS)
    secret = base64.urlsafe_b64encode(HMAC_SECRET.encode()).rstrip(b"=").decode()
    from joserfc import jws

    key = import_key({"kty": "oct", "k": secret})
    jws.deserialize_compact(token, key, registry=jws.JWSRegistry(algorithms=[algorithm]))
    assert signer.symmetric
    with pytest.raises(SigningError, match="no public key"):
        signer.public_jwk()


def test_ed25519_goes_on_the_wire_as_configured() -> None:
    token = sign_jwt(LocalSigner("Ed25519", ed25519_pem()), CLAIMS)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "Ed25519"


def test_alg_header_cannot_be_given() -> None:
    with pytest.raises(SigningError, match="alg"):
        sign_jwt(LocalSigner("ES256", ec_pem()), CLAIMS, {"alg": "none"})


@pytest.mark.parametrize(
    ("algorithm", "material", "message"),
    [
        ("RS256", ec_pem(), "needs an RSA key"),
        ("ES384", ec_pem("P-256"), "on secp384r1"),
        ("Ed25519", ec_pem(), "Ed25519"),
        ("RS256", rsa_pem(1024), "2048"),
        ("ES256", "not a key " + CANARY, "does not parse"),
        ("HS256", "short", "at least 32 bytes"),
    ],
)
def test_bad_local_material_is_refused_without_quoting_it(
    algorithm: str, material: str, message: str
) -> None:
    with pytest.raises(InvalidConfiguration, match=message) as caught:
        LocalSigner(algorithm, material)
    assert CANARY not in str(caught.value) and "BEGIN" not in str(caught.value)


@pytest.mark.parametrize(("algorithm", "size"), [("ES256", 32), ("ES384", 48), ("ES512", 66)])
def test_der_to_raw_pads_each_integer_to_the_curve_size(algorithm: str, size: int) -> None:
    """RFC 7518 §3.4 (security.md #32): small R and S are left-padded, P-521 uses 66."""
    raw = der_to_raw(encode_dss_signature(1, 2**200), algorithm)
    assert len(raw) == 2 * size
    assert int.from_bytes(raw[:size], "big") == 1
    assert int.from_bytes(raw[size:], "big") == 2**200
    with pytest.raises(SigningError):
        der_to_raw(encode_dss_signature(2 ** (size * 8), 1), algorithm)
    with pytest.raises(SigningError, match="malformed"):
        der_to_raw(b"\x30\x01junk", algorithm)


def _private_keys() -> list[tuple[object, str]]:
    return [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
        (ec.generate_private_key(ec.SECP521R1()), "EC"),
        (ed25519.Ed25519PrivateKey.generate(), "OKP"),
    ]


@pytest.mark.parametrize(("key", "kty"), _private_keys(), ids=["RSA", "EC", "OKP"])
def test_a_private_key_gives_only_public_members(key: object, kty: str) -> None:
    """security.md #33: fed a private key, the JWK is its public half, allowlisted."""
    jwk = public_jwk_of(key, kid="k", alg="X")  # type: ignore[arg-type]
    assert_public(jwk)
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_jwk = import_key(pem, kty).as_dict(private=True)
    assert set(private_jwk) & PRIVATE_MEMBERS  # the input really had private members
    filtered = public_members({**private_jwk, "kid": "k", "use": "sig"})
    assert_public(filtered)
    assert jwk_thumbprint(filtered) == jwk_thumbprint(jwk)
    assert import_key(pem, kty).thumbprint() == jwk_thumbprint(jwk)  # RFC 7638, as joserfc


def test_public_jwk_kid_defaults_to_the_thumbprint() -> None:
    signer = LocalSigner("ES256", ec_pem())
    jwk = signer.public_jwk()
    assert jwk["kid"] == signer.thumbprint()
    assert jwk["use"] == "sig" and jwk["alg"] == "ES256"
    assert LocalSigner("ES256", ec_pem(), kid="mine").public_jwk()["kid"] == "mine"
    assert "PRIVATE" not in repr(signer) and "BEGIN" not in repr(signer)
