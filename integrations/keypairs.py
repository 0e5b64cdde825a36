"""Key pairs for providers that take a public key (GitHub, Snowflake, Salesforce, Box).

The private half is meant to be stored encrypted in an integration and never shown
again; the public half is what an operator uploads, as PEM or as a JWK whose ``kid`` is
its RFC 7638 thumbprint unless the integration names its own.

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.views.decorators.debug import sensitive_variables

from .exceptions import InvalidConfiguration
from .tokens.signing import jwk_thumbprint, load_signing_key, public_jwk, public_key_pem

# Kind → (label, the algorithms a key of that kind can sign with; the first is the usual).
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rsa-2048": ("RSA 2048", ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")),
    "rsa-3072": ("RSA 3072", ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")),
    "ec-p256": ("EC P-256", ("ES256",)),
    "ec-p384": ("EC P-384", ("ES384",)),
    "ed25519": ("Ed25519", ("EdDSA", "Ed25519")),
}


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, label) for kind, (label, _) in KINDS.items()]


@dataclass(frozen=True)
class PublicKey:
    """What may be shown of a key pair: public PEM, JWK and its thumbprint."""

    pem: str
    jwk: dict[str, Any]
    thumbprint: str


@dataclass(frozen=True)
class KeyPair:
    """A fresh key pair. ``private_pem`` never appears in repr."""

    kind: str
    private_pem: str = field(repr=False)
    public: PublicKey

    @property
    def algorithm(self) -> str:
        return KINDS[self.kind][1][0]


@sensitive_variables("key", "private_pem")
def generate(kind: str) -> KeyPair:
    """A new key pair of ``kind`` (a key of ``KINDS``), private half as PKCS#8 PEM."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "rsa-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif kind == "ec-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ec-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InvalidConfiguration(
            f"unknown key type {kind!r}; use one of {', '.join(KINDS)}", field="kind"
        )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return KeyPair(kind, private_pem, public_key(KINDS[kind][1][0], private_pem))


@sensitive_variables("material", "key")
def usual_algorithm(material: str) -> str | None:
    """The algorithm a PEM private key usually signs with; None if it is not one."""
    try:
        key = serialization.load_pem_private_key(material.strip().encode(), password=None)
    except Exception:  # not PEM, encrypted, or an unsupported type: no public half to show
        return None
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return None


@sensitive_variables("material", "key")
def public_key(algorithm: str, material: str, key_id: str = "") -> PublicKey:
    """The public half of a private PEM valid for ``algorithm``, ready to upload.

    The JWK carries ``alg``, ``use: sig`` and ``kid`` (``key_id`` when configured, else
    the thumbprint). Raises InvalidConfiguration for a shared secret or a bad key.
    """
    key = load_signing_key(algorithm, material)
    pem = public_key_pem(key)
    jwk = public_jwk(key)
    if pem is None or jwk is None:
        raise InvalidConfiguration(f"{algorithm} uses a shared secret: it has no public key")
    thumbprint = jwk_thumbprint(jwk)
    return PublicKey(
        pem, {**jwk, "alg": algorithm, "use": "sig", "kid": key_id or thumbprint}, thumbprint
    )
