"""Signing keys: the one place a key is checked against its algorithm, and the standard
claims. The PEM parsing and the shared-secret checks are ``signers.material``'s, which
the local signer uses too.

JWTs are minted by ``tokens.jws.JWTSigner`` through a key-custody signer
(``integrations.signers``: a local key, a PKCS#11 token, AWS KMS). Keys are validated
against the algorithm before use (security.md #1-3) and parsed once per process: loading an
RSA PEM costs tens of milliseconds, so parsed keys are cached by a digest of their
material (a changed key is a different entry).

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration

# Re-exported: the RFC 7638 thumbprint and the HMAC secret lengths have one definition,
# signers.base's.
from ..signers.base import HMAC_ALGORITHMS as HMAC_ALGORITHMS
from ..signers.base import THUMBPRINT_MEMBERS as THUMBPRINT_MEMBERS
from ..signers.base import describe, public_jwk_of
from ..signers.base import jwk_thumbprint as jwk_thumbprint
from ..signers.material import hmac_secret, parse_private_key

RSA_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
# "Ed25519" is RFC 9864's fully specified name for EdDSA over Ed25519: a server
# registered with it refuses a JWT labelled "EdDSA", so it goes on the wire as configured.
EDDSA_ALGORITHMS = {"EdDSA", "Ed25519"}
ALGORITHMS = (
    tuple(HMAC_ALGORITHMS)
    + tuple(sorted(RSA_ALGORITHMS))
    + tuple(EC_ALGORITHMS)
    + ("EdDSA", "Ed25519")
)
MIN_RSA_BITS = 2048
# Header fields a configuration may never set: they redirect key lookup or change how
# the token is processed (RFC 8725 §3.1-3.2), or override the algorithm.
FORBIDDEN_HEADERS = frozenset({"alg", "jku", "jwk", "x5u", "x5c", "crit", "b64", "zip"})

SigningKey = (
    bytes
    | rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _digest(material: str) -> str:
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@sensitive_variables("material")
def load_signing_key(algorithm: str, material: str) -> SigningKey:
    """Parse and check a key for ``algorithm``; raises InvalidConfiguration(field="key")."""
    if algorithm not in ALGORITHMS:
        raise InvalidConfiguration(
            f"algorithm {algorithm!r} is not allowed; use one of {', '.join(ALGORITHMS)}",
            field="algorithm",
        )
    return _load_cached(algorithm, material, _digest(material))


@functools.lru_cache(maxsize=256)
def _load_cached(algorithm: str, material: str, digest: str) -> SigningKey:
    # ``digest`` makes the cache key; ``material`` is needed to parse on a miss.
    # lru_cache keeps a reference to ``material`` in memory only, like the key object.
    if algorithm in HMAC_ALGORITHMS:
        return hmac_secret(algorithm, material)
    return _private_key(algorithm, material)


@sensitive_variables("material")
def _private_key(algorithm: str, material: str) -> SigningKey:
    key = parse_private_key(algorithm, material)
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidConfiguration(
                f"{algorithm} needs an RSA private key; this is {describe(key)}", field="key"
            )
        if key.key_size < MIN_RSA_BITS:
            raise InvalidConfiguration(
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}",
                field="key",
            )
    elif algorithm in EC_ALGORITHMS:
        curve = EC_ALGORITHMS[algorithm]
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidConfiguration(
                f"{algorithm} needs an EC private key on {curve}; this is {describe(key)}",
                field="key",
            )
        if key.curve.name != curve:
            raise InvalidConfiguration(
                f"{algorithm} needs an EC key on {curve}; this one is on {key.curve.name}",
                field="key",
            )
    elif algorithm == "Ed25519":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise InvalidConfiguration(
                f"Ed25519 needs an Ed25519 private key; this is {describe(key)}", field="key"
            )
    elif algorithm in EDDSA_ALGORITHMS:
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            raise InvalidConfiguration(
                f"EdDSA needs an Ed25519 or Ed448 private key; this is {describe(key)}",
                field="key",
            )
    return key  # type: ignore[return-value]


def public_key_pem(key: SigningKey) -> str | None:
    """The public half as PEM (None for a shared secret)."""
    if isinstance(key, bytes):
        return None
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_jwk(key: SigningKey) -> dict[str, Any] | None:
    """The public half as a JWK (RFC 7517, allowlisted members only: security.md #33),
    None for a shared secret."""
    if isinstance(key, bytes):
        return None
    return public_jwk_of(key, use="")


@sensitive_variables("material", "key")
def key_fingerprint(algorithm: str, material: str) -> str:
    """A public fingerprint of a configured key, safe to show: SHA-256 of the public
    key (DER), or for a shared secret a salted hash that cannot be reversed."""
    key = load_signing_key(algorithm, material)
    if isinstance(key, bytes):
        digest = hashlib.sha256(b"integrations-secret-fingerprint:" + key).hexdigest()
        return f"secret:{digest[:16]}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sha = hashes.Hash(hashes.SHA256())
    sha.update(der)
    return "SHA256:" + sha.finalize().hex()


def check_headers(headers: dict[str, Any]) -> None:
    bad = sorted(name for name in headers if name.lower() in FORBIDDEN_HEADERS)
    if bad:
        raise InvalidConfiguration(
            f"JOSE header field(s) {', '.join(bad)} may not be configured", field="headers"
        )


def standard_claims(
    claims: dict[str, Any],
    *,
    lifetime: int,
    clock_skew: int = 0,
    jti: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Configured claims plus ``iat`` (backdated by clock_skew) and ``exp``.

    ``"nbf": true`` in the claims adds ``nbf`` = ``iat``; ``"jti": true`` (or ``jti``
    here, for flows that always need one) adds a fresh uuid4 ``jti``. Epoch seconds are
    integers (RFC 7519 §2 NumericDate; security.md #4-5).
    """
    issued = int(now if now is not None else time.time())
    payload = {name: value for name, value in claims.items() if value is not True}
    payload["iat"] = issued - clock_skew
    payload["exp"] = issued + lifetime
    if claims.get("nbf") is True:
        payload["nbf"] = issued - clock_skew
    if jti or claims.get("jti") is True:
        payload["jti"] = str(uuid.uuid4())
    return payload
