"""Key material for tests, generated once per run."""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

CANARY = "CANARY-s3cr3t-9f8e7d6c5b4a-never-show-me-anywhere"
HMAC_SECRET = CANARY + "-padding-to-64-bytes-0123456789"


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@functools.cache
def rsa_pem(bits: int = 2048) -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_pem(curve: str = "P-256") -> str:
    return _ec_pem(curve)  # ec_pem() and ec_pem("P-256") are one key


@functools.cache
def _ec_pem(curve: str) -> str:
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    return _pem(ec.generate_private_key(curves[curve]))


@functools.cache
def ed25519_pem() -> str:
    return _pem(ed25519.Ed25519PrivateKey.generate())


def key_for(algorithm: str) -> str:
    """A valid signing key (private PEM or shared secret) for ``algorithm``."""
    if algorithm.startswith("HS"):
        return HMAC_SECRET
    if algorithm[:2] in {"RS", "PS"}:
        return rsa_pem()
    if algorithm in ("EdDSA", "Ed25519"):
        return ed25519_pem()
    return ec_pem({"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[algorithm])


def verify_key_for(algorithm: str) -> str:
    """What a verifier holds: the public PEM, or the shared secret."""
    material = key_for(algorithm)
    return material if algorithm.startswith("HS") else public_pem(material)
