"""DPoP proofs (security.md #34), verified with joserfc and jwcrypto, not PyJWT."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.jwk import import_key
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from integrations.exceptions import InvalidConfiguration
from integrations.tokens.dpop import (
    DPoPKey,
    NonceStore,
    access_token_hash,
    normalise_htu,
    parse_challenges,
    wants_nonce_resource,
    wants_nonce_token,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def segments(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    pad = lambda text: text + "=" * (-len(text) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def joserfc_verify(token: str, key: DPoPKey) -> tuple[dict, dict]:
    """joserfc with the proof's public key; a larger header limit, since an RSA
    proof's jwk alone is over joserfc's 512-byte default."""
    pem = key._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_type = {"ES": "EC", "Ed": "OKP", "RS": "RSA", "PS": "RSA"}[key.algorithm[:2]]
    algorithm = "EdDSA" if key.algorithm == "Ed25519" else key.algorithm
    registry = jws.JWSRegistry(algorithms=[algorithm])
    registry.max_header_length = 4096
    obj = jws.deserialize_compact(token, import_key(pem, key_type), registry=registry)
    return dict(obj.protected), json.loads(obj.payload)


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_proof_verifies_with_joserfc(algorithm: str) -> None:
    key = DPoPKey.from_pem(DPoPKey.generate(algorithm).to_pem(), algorithm)
    token = key.proof("post", "https://AS.example.com/token?x=1#frag", nonce="n-1")
    header, claims = joserfc_verify(token, key)
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == algorithm
    assert header["jwk"] == key.public_jwk
    assert claims["htm"] == "POST"
    assert claims["htu"] == "https://as.example.com/token"
    assert claims["nonce"] == "n-1"
    assert abs(claims["iat"] - time.time()) < 5
    assert "ath" not in claims


def test_ed25519_name_goes_on_the_wire_as_configured() -> None:
    key = DPoPKey.generate("Ed25519")
    header, _ = segments(key.proof("GET", "https://api.example/"))
    assert header["alg"] == "Ed25519"
    assert header["jwk"]["crv"] == "Ed25519"


def test_proof_verifies_with_the_embedded_jwk_in_jwcrypto() -> None:
    """A resource server verifies with the header's own jwk: that must work."""
    key = DPoPKey.generate("ES256")
    token = key.proof("GET", "https://api.example/v1/items", access_token="tok-123")
    header, claims = segments(token)
    verifier = jwcrypto_jws.JWS()
    verifier.deserialize(token)
    verifier.verify(jwcrypto_jwk.JWK(**header["jwk"]), alg="ES256")
    assert claims["ath"] == access_token_hash("tok-123")


def test_ath_is_base64url_sha256_of_the_token() -> None:
    digest = hashlib.sha256(b"an-access-token").digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert access_token_hash("an-access-token") == expected
    assert "=" not in expected


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "PS256"])
def test_jwk_holds_public_members_only(algorithm: str) -> None:
    key = DPoPKey.generate(algorithm)
    header, _ = segments(key.proof("GET", "https://api.example/"))
    assert not PRIVATE_MEMBERS & set(header["jwk"])
    assert set(header["jwk"]) <= {"kty", "crv", "x", "y", "n", "e"}


def test_jti_is_unique_per_proof() -> None:
    key = DPoPKey.generate()
    jtis = {segments(key.proof("GET", "https://api.example/"))[1]["jti"] for _ in range(500)}
    assert len(jtis) == 500


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://API.Example.com/a/b?q=1#f", "https://api.example.com/a/b"),
        ("https://api.example.com:443/a", "https://api.example.com/a"),
        ("http://api.example.com:80", "http://api.example.com/"),
        ("https://api.example.com:8443/a/", "https://api.example.com:8443/a/"),
        ("https://user:pw@api.example.com/a", "https://api.example.com/a"),
        ("https://[::1]:8443/x?y", "https://[::1]:8443/x"),
        ("HTTPS://api.example.com/Case/Kept", "https://api.example.com/Case/Kept"),
    ],
)
def test_htu_normalisation(url: str, htu: str) -> None:
    assert normalise_htu(url) == htu


def test_htu_must_be_an_absolute_http_url() -> None:
    with pytest.raises(ValueError):
        normalise_htu("/token")


def test_jkt_is_the_rfc7638_thumbprint() -> None:
    key = DPoPKey.generate("ES256")
    expected = jwcrypto_jwk.JWK(**key.public_jwk).thumbprint()
    assert key.jkt() == expected
    rsa_key = DPoPKey.generate("RS256")
    assert rsa_key.jkt() == jwcrypto_jwk.JWK(**rsa_key.public_jwk).thumbprint()


def test_pem_round_trip_keeps_the_key_and_infers_the_algorithm() -> None:
    key = DPoPKey.generate("ES384")
    again = DPoPKey.from_pem(key.to_pem())
    assert again.algorithm == "ES384" and again.jkt() == key.jkt()
    assert DPoPKey.from_pem(DPoPKey.generate("EdDSA").to_pem()).algorithm == "EdDSA"


def test_bad_keys_are_refused_naming_the_field_never_the_text() -> None:
    pem = DPoPKey.generate("ES256").to_pem()
    with pytest.raises(InvalidConfiguration) as caught:
        DPoPKey.from_pem(pem, "ES384")
    assert caught.value.field == "dpop_key"
    assert "PRIVATE" not in str(caught.value)
    with pytest.raises(InvalidConfiguration) as caught:
        DPoPKey.from_pem("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")
    assert caught.value.field == "dpop_key" and "not a key" not in str(caught.value)
    with pytest.raises(InvalidConfiguration, match="2048"):
        DPoPKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")
    with pytest.raises(InvalidConfiguration) as caught:
        DPoPKey(ec.generate_private_key(ec.SECP256R1()), "HS256")
    assert caught.value.field == "dpop_algorithm"


def test_repr_and_pickle_show_no_key() -> None:
    import pickle

    key = DPoPKey.generate()
    assert "PRIVATE" not in repr(key) and key.jkt() in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_nonce_store_keeps_the_latest_per_origin_and_is_bounded() -> None:
    store = NonceStore(max_origins=3)
    store.set("https://as.example/token", "n1")
    store.set("https://AS.example:443/other?x", "n2")
    assert store.get("https://as.example/anything") == "n2"
    for index in range(5):
        store.set(f"https://rs{index}.example/", f"m{index}")
    assert len(store) == 3 and store.get("https://as.example/") is None
    store.set("https://rs4.example/", 'bad"nonce')  # not NQCHAR: ignored
    assert store.get("https://rs4.example/") == "m4"
    assert store.update("https://rs4.example/", {"DPoP-Nonce": "x" * 600}) is None


def test_nonce_store_is_thread_safe() -> None:
    store = NonceStore(max_origins=50)

    def work(worker: int) -> None:
        for index in range(500):
            store.set(f"https://h{(worker * 7 + index) % 80}.example/", f"n{index}")
            store.get(f"https://h{index % 80}.example/")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 50


def test_token_endpoint_nonce_error_is_recognised() -> None:
    assert wants_nonce_token(400, {"error": "use_dpop_nonce", "error_description": "x"})
    assert not wants_nonce_token(401, {"error": "use_dpop_nonce"})
    assert not wants_nonce_token(400, {"error": "invalid_dpop_proof"})
    assert not wants_nonce_token(400, None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"', True),
        ('Bearer realm="x", DPoP algs="ES256 PS256", error="use_dpop_nonce"', True),
        ("dpop error=use_dpop_nonce", True),
        ('Bearer error="use_dpop_nonce"', False),
        ('DPoP error="invalid_token"', False),
        ('Basic dGVzdA==, DPoP error="use_dpop_nonce"', True),
        ("", False),
    ],
)
def test_resource_nonce_challenge_is_recognised(header: str, expected: bool) -> None:
    assert wants_nonce_resource(401, {"WWW-Authenticate": header}) is expected
    assert not wants_nonce_resource(400, {"WWW-Authenticate": header})


def test_challenge_parser_reads_quoted_escapes() -> None:
    assert parse_challenges('DPoP error_description="say \\"hi\\"", error="x"') == [
        ("dpop", {"error_description": 'say "hi"', "error": "x"})
    ]
