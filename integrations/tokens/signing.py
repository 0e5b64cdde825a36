"""Signing keys: the one place a key is parsed and checked, and the standard claims.

JWTs are minted by ``tokens.jws.JWTSigner`` through a key-custody signer
(``integrations.signers``: a local key, a PKCS#11 token, AWS KMS). Keys are validated
against the algorithm before use (SECURITY 1-3) and parsed once per process: loading an
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

# Re-exported: the RFC 7638 thumbprint has one implementation, signers.base's.
from ..signers.base import THUMBPRINT_MEMBERS as THUMBPRINT_MEMBERS
from ..signers.base import jwk_thumbprint as jwk_thumbprint
from ..signers.base import public_jwk_of

HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
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
        return _hmac_secret(algorithm, material)
    return _private_key(algorithm, material)


@sensitive_variables("material", "secret")
def _hmac_secret(algorithm: str, material: str) -> bytes:
    secret = material.encode("utf-8")
    needed = HMAC_ALGORITHMS[algorithm]
    if len(secret) < needed:
        raise InvalidConfiguration(
            f"{algorithm} needs a secret of at least {needed} bytes; this one has {len(secret)}",
            field="key",
        )
    weakness = low_entropy(secret)
    if weakness:
        raise InvalidConfiguration(
            f"{algorithm} secret is not random enough ({weakness})", field="key"
        )
    if "-----BEGIN" in material:
        raise InvalidConfiguration(
            f"{algorithm} takes a shared secret, not a PEM key; pick an RS/PS/ES/EdDSA "
            "algorithm for a private key",
            field="key",
        )
    return secret


# Below these a secret is a pattern, not random bytes (security.md #2). Random text of
# 32 characters (hex, base64, a generated password) clears both by far.
MIN_DISTINCT_BYTES = 8
MIN_DISTINCT_STEPS = 4
MIN_LZ_PHRASES = 12
# Enough of a long secret to judge it; the checks are quadratic.
ENTROPY_SAMPLE = 512


@sensitive_variables("secret", "sample")
def low_entropy(secret: bytes) -> str:
    """Why ``secret`` is obviously not random, or "" when it may be: few distinct bytes
    (``"a" * 32``), one short pattern repeated (``"abcdefgh" * 4``), evenly spaced bytes
    (``"abcdefghijklmnopqrstuvwxyz012345"``), or text made mostly of repeats of itself.
    Says how, never what."""
    sample = secret[:ENTROPY_SAMPLE]
    if len(set(sample)) < MIN_DISTINCT_BYTES:
        return f"fewer than {MIN_DISTINCT_BYTES} distinct bytes"
    period = next(
        (
            p
            for p in range(1, len(sample) // 2 + 1)
            if sample == (sample[:p] * len(sample))[: len(sample)]
        ),
        0,
    )
    if period:
        return f"one {period}-byte pattern repeated"
    if lz_phrases(sample) < MIN_LZ_PHRASES:
        return "mostly repeats of itself"
    steps = {b - a for a, b in zip(sample, sample[1:], strict=False)}
    if len(steps) < MIN_DISTINCT_STEPS:
        return "a run of evenly spaced bytes"
    return ""


def lz_phrases(data: bytes) -> int:
    """The Lempel-Ziv (1976) complexity of ``data``: how many phrases it splits into
    when each phrase is the shortest piece not seen before. Random text has many;
    text built from repeats of itself has few."""
    phrases, start = 0, 0
    while start < len(data):
        length = 1
        while (
            start + length <= len(data)
            and data[start : start + length] in data[: start + length - 1]
        ):
            length += 1
        phrases += 1
        start += length
    return phrases


@sensitive_variables("material")
def _private_key(algorithm: str, material: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(material.strip().encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise InvalidConfiguration(
            f"{algorithm} needs an unencrypted PEM private key; this value does not parse as one",
            field="key",
        ) from None
    except Exception:  # cryptography raises UnsupportedAlgorithm for odd key types
        raise InvalidConfiguration(
            "the PEM private key uses an unsupported key type", field="key"
        ) from None
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidConfiguration(
                f"{algorithm} needs an RSA private key; this is {_describe(key)}", field="key"
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
                f"{algorithm} needs an EC private key on {curve}; this is {_describe(key)}",
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
                f"Ed25519 needs an Ed25519 private key; this is {_describe(key)}", field="key"
            )
    elif algorithm in EDDSA_ALGORITHMS:
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            raise InvalidConfiguration(
                f"EdDSA needs an Ed25519 or Ed448 private key; this is {_describe(key)}",
                field="key",
            )
    return key  # type: ignore[return-value]


def _describe(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA {key.key_size}-bit key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 key"
    return f"a {type(key).__name__}"


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
    integers (RFC 7519 §2 NumericDate; SECURITY 4-5).
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
