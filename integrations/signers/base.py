"""What every signer offers, and the JWS assembly that is the same for all of them.

A signer holds (or reaches) one key. The app builds the JWS itself (header, claims,
signature) and only asks the signer to sign the signing input, so a key that lives in an
HSM or a KMS never leaves it (security.md #32). The public key is read from the signer
once and cached: previews, thumbprints and JWKS never call the device again.

Public JWKs are built from an allowlist of members (security.md #33): whatever the
source object holds, a private member cannot come out.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..exceptions import SigningError

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_PKCS1_ALGORITHMS = ("RS256", "RS384", "RS512")
RSA_PSS_ALGORITHMS = ("PS256", "PS384", "PS512")
# JWS ECDSA algorithm -> (cryptography curve name, bytes per R and per S: RFC 7518 §3.4).
EC_ALGORITHMS = {"ES256": ("secp256r1", 32), "ES384": ("secp384r1", 48), "ES512": ("secp521r1", 66)}
# "Ed25519" is RFC 9864's fully specified name; it goes on the wire as configured.
EDDSA_ALGORITHMS = ("EdDSA", "Ed25519")
ALGORITHMS = (
    *HMAC_ALGORITHMS,
    *RSA_PKCS1_ALGORITHMS,
    *RSA_PSS_ALGORITHMS,
    *EC_ALGORITHMS,
    *EDDSA_ALGORITHMS,
)

# security.md #33: the only members a published JWK may carry.
PUBLIC_JWK_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")
# RFC 7638 §3.2: the members a thumbprint hashes, per key type.
THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_PRIVATE_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_JWK_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def check_algorithm(algorithm: str, allowed: tuple[str, ...] = ALGORITHMS) -> str:
    """Return ``algorithm`` if this signer type supports it, else raise SigningError."""
    if algorithm not in allowed:
        raise SigningError(
            f"algorithm {algorithm!r} is not supported here; use one of {', '.join(allowed)}"
        )
    return algorithm


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """The SHA-2 hash a JWS RSA/ECDSA/HMAC algorithm uses (its last three digits)."""
    bits = algorithm[-3:]
    if bits == "256":
        return hashes.SHA256()
    if bits == "384":
        return hashes.SHA384()
    if bits == "512":
        return hashes.SHA512()
    raise SigningError(f"algorithm {algorithm!r} has no SHA-2 hash")


def der_to_raw(der: bytes, algorithm: str) -> bytes:
    """An ASN.1 DER ECDSA signature (what OpenSSL, KMS and many HSMs return) as JWS's
    fixed-size R||S (RFC 7518 §3.4; security.md #32): each integer left-padded to the
    curve's byte length (32, 48, or 66 for P-521, whose 521 bits do not fill 65 bytes)."""
    size = EC_ALGORITHMS[algorithm][1]
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        raise SigningError(f"{algorithm}: the signer returned a malformed signature") from None
    if r.bit_length() > size * 8 or s.bit_length() > size * 8:
        raise SigningError(f"{algorithm}: the signature does not fit the curve")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def check_raw_ecdsa(raw: bytes, algorithm: str) -> bytes:
    """A raw R||S from a device (PKCS#11 CKM_ECDSA) must be exactly 2 x curve bytes."""
    size = EC_ALGORITHMS[algorithm][1]
    if len(raw) != 2 * size:
        raise SigningError(
            f"{algorithm}: the signer returned {len(raw)} signature bytes, expected {2 * size}"
        )
    return raw


def check_public_key(public: PublicKey, algorithm: str) -> PublicKey:
    """Refuse a key of the wrong type, curve or size for ``algorithm``."""
    if algorithm in RSA_PKCS1_ALGORITHMS + RSA_PSS_ALGORITHMS:
        if not isinstance(public, rsa.RSAPublicKey):
            raise SigningError(f"{algorithm} needs an RSA key; this is {describe(public)}")
        if public.key_size < 2048:
            raise SigningError(f"RSA keys need at least 2048 bits; this one has {public.key_size}")
    elif algorithm in EC_ALGORITHMS:
        curve = EC_ALGORITHMS[algorithm][0]
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != curve:
            raise SigningError(
                f"{algorithm} needs an EC key on {curve}; this is {describe(public)}"
            )
    elif algorithm == "Ed25519":
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise SigningError(f"Ed25519 needs an Ed25519 key; this is {describe(public)}")
    elif algorithm == "EdDSA":
        if not isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            raise SigningError(f"EdDSA needs an Ed25519 or Ed448 key; this is {describe(public)}")
    else:
        raise SigningError(f"{algorithm} takes a shared secret, not a key pair")
    return public


def describe(key: object) -> str:
    """A key's type for error messages: never any of its material."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return f"an RSA {key.key_size}-bit key"
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return "an Ed25519 key"
    if isinstance(key, (ed448.Ed448PublicKey, ed448.Ed448PrivateKey)):
        return "an Ed448 key"
    return f"a {type(key).__name__}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, size: int | None = None) -> str:
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


def public_members(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """Only the allowlisted members of ``jwk`` (security.md #33): a private JWK passed in
    by mistake comes out as its public half."""
    return {name: jwk[name] for name in PUBLIC_JWK_MEMBERS if name in jwk}


def public_jwk_of(
    key: PublicKey | PrivateKey, *, kid: str = "", alg: str = "", use: str = "sig"
) -> dict[str, Any]:
    """The public JWK (RFC 7517/7518/8037) of a key; a private key gives its public half.

    Members are computed from the public numbers only and then filtered through the
    allowlist, so no code path can add ``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``k``.
    """
    public: object = key
    if isinstance(key, _PRIVATE_TYPES):
        public = key.public_key()
    members: dict[str, Any]
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        members = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        size = (public.curve.key_size + 7) // 8
        point = public.public_numbers()
        members = {
            "kty": "EC",
            "crv": _JWK_CURVES.get(public.curve.name, public.curve.name),
            "x": _uint(point.x, size),
            "y": _uint(point.y, size),
        }
    elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        crv = "Ed25519" if isinstance(public, ed25519.Ed25519PublicKey) else "Ed448"
        members = {"kty": "OKP", "crv": crv, "x": b64url(raw)}
    else:
        raise SigningError(f"cannot publish {describe(public)} as a JWK")
    members.update({name: value for name, value in (("kid", kid), ("alg", alg)) if value})
    if use:
        members["use"] = use
    return public_members(members)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


class Signer(abc.ABC):
    """One signing key, wherever it lives.

    ``algorithm`` is the JWS ``alg`` as configured (``Ed25519`` is accepted as well as
    ``EdDSA`` and sent as given). Subclasses implement ``sign`` and ``_read_public_key``;
    the public key is read once per signer and cached (security.md #32).
    """

    algorithm: str
    kid: str
    #: True for HMAC: no public key, nothing to publish.
    symmetric: bool = False

    def __init__(self, algorithm: str, *, kid: str = "") -> None:
        self.algorithm = check_algorithm(algorithm)
        self.kid = kid
        self._public: PublicKey | None = None
        self._public_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.algorithm} kid={self.kid!r}>"

    @abc.abstractmethod
    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input`` (raw R||S for ECDSA), or SigningError."""

    @abc.abstractmethod
    def _read_public_key(self) -> PublicKey:
        """Fetch the public key from the key's home (called once)."""

    def public_key(self) -> PublicKey:
        """The public key (a ``cryptography`` object), read once and cached."""
        if self.symmetric:
            raise SigningError(f"{self.algorithm} uses a shared secret: there is no public key")
        if self._public is None:
            with self._public_lock:
                if self._public is None:
                    self._public = check_public_key(self._read_public_key(), self.algorithm)
        return self._public

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK with ``kid`` (configured, else the thumbprint), ``alg``, ``use``."""
        bare = public_jwk_of(self.public_key(), use="")
        kid = self.kid or jwk_thumbprint(bare)
        return public_jwk_of(self.public_key(), kid=kid, alg=self.algorithm)

    def public_pem(self) -> str:
        return (
            self.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key."""
        return jwk_thumbprint(public_jwk_of(self.public_key(), use=""))


def _json_segment(value: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SigningError(f"the JWT cannot be encoded as JSON: {type(exc).__name__}") from None
    return b64url(text.encode("utf-8"))


def sign_jwt(
    signer: Signer, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> str:
    """The compact JWS (RFC 7515 §7.1) of ``claims``: header ``alg`` (the signer's, never
    a header's), ``typ: JWT`` unless given, then ``headers``; the signature from the
    signer. Which headers a configuration may set is checked by the caller."""
    extra = dict(headers or {})
    if "alg" in extra:
        raise SigningError("the JOSE header's alg comes from the signer and may not be given")
    header: dict[str, Any] = {"alg": signer.algorithm, "typ": "JWT", **extra}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"
