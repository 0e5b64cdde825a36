"""DPoP (RFC 9449): proof-of-possession keys, proofs, and the servers' nonces.

A ``DPoPKey`` is one integration's proof key. It is stored as PEM (encrypted by the
app, so every process proves the same key) and makes one proof per request: a JWT with
``typ: dpop+jwt``, the public ``jwk`` in its header, and ``htm``, ``htu``, ``iat``, a
fresh ``jti``, ``ath`` on resource requests and ``nonce`` when the server gave one
(security.md #34).

Proofs are made on every call, so the header is encoded once per key and signing goes
straight to ``cryptography`` (no JWT library in the path): an ES256 proof costs tens of
microseconds, well under a loopback call.

``NonceStore`` keeps the latest ``DPoP-Nonce`` per origin; ``wants_nonce_token`` and
``wants_nonce_resource`` recognise the two ways a server asks for one (RFC 9449 §8, §9).
Answering them with one retry, not a loop, is the caller's job.

Exception messages must not contain sensitive information: no key material ever
reaches ``str(exc)`` or ``repr``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..exceptions import InvalidConfiguration

DEFAULT_ALGORITHM = "ES256"
EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], str, int]] = {
    # algorithm: (curve, JWK crv, coordinate size in bytes)
    "ES256": (ec.SECP256R1, "P-256", 32),
    "ES384": (ec.SECP384R1, "P-384", 48),
    "ES512": (ec.SECP521R1, "P-521", 66),
}
# RFC 9864's fully specified Ed25519 and the older polymorphic EdDSA: same key, and the
# name goes on the wire as configured (servers may register only one of them).
OKP_ALGORITHMS = ("EdDSA", "Ed25519")
RSA_ALGORITHMS = ("RS256", "PS256")
ALGORITHMS = (*EC_CURVES, *OKP_ALGORITHMS, *RSA_ALGORITHMS)
MIN_RSA_BITS = 2048
# The only members a proof's jwk may carry (security.md #33-34): never d, p, q, ...
PUBLIC_MEMBERS = {
    "RSA": ("kty", "n", "e"),
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
}

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


@functools.lru_cache(maxsize=512)
def normalise_htu(url: str) -> str:
    """The ``htu`` for a request URL: no query, fragment or userinfo; scheme and host in
    lower case; the scheme's default port dropped; an empty path as ``/`` (RFC 9449
    §4.2, RFC 3986 §6.2.2-6.2.3). Cached: a session calls few distinct URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("htu must be an absolute http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def _public_jwk(key: PrivateKey, algorithm: str) -> dict[str, str]:
    public = key.public_key()
    jwk: dict[str, str]
    if isinstance(public, ec.EllipticCurvePublicKey):
        _curve, crv, size = EC_CURVES[algorithm]
        numbers = public.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url(_int_bytes(numbers.x, size)),
            "y": b64url(_int_bytes(numbers.y, size)),
        }
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        rsa_numbers = public.public_numbers()
        jwk = {
            "kty": "RSA",
            "n": b64url(_int_bytes(rsa_numbers.n)),
            "e": b64url(_int_bytes(rsa_numbers.e)),
        }
    # Built from the allowlist, so a private member cannot slip in (security.md #34).
    return {name: jwk[name] for name in PUBLIC_MEMBERS[jwk["kty"]]}


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint: the required members, sorted, no whitespace."""
    members = {name: jwk[name] for name in PUBLIC_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def _check_key(key: object, algorithm: str) -> PrivateKey:
    if algorithm in EC_CURVES:
        curve = EC_CURVES[algorithm][0]
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, curve):
            return key
        raise InvalidConfiguration(f"{algorithm} needs an EC key on {curve.name}", field="dpop_key")
    if algorithm in OKP_ALGORITHMS:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key
        raise InvalidConfiguration(f"{algorithm} needs an Ed25519 key", field="dpop_key")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidConfiguration(f"{algorithm} needs an RSA key", field="dpop_key")
    if key.key_size < MIN_RSA_BITS:
        raise InvalidConfiguration(
            f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}",
            field="dpop_key",
        )
    return key


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise InvalidConfiguration(
            f"DPoP algorithm {algorithm!r} is not supported; use one of {', '.join(ALGORITHMS)}",
            field="dpop_algorithm",
        )
    return algorithm


def infer_algorithm(key: object) -> str:
    """The natural algorithm for a key: its EC curve's, EdDSA, or PS256 for RSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for algorithm, (curve, _crv, _size) in EC_CURVES.items():
            if isinstance(key.curve, curve):
                return algorithm
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS256"
    raise InvalidConfiguration("the DPoP key must be EC, Ed25519 or RSA", field="dpop_key")


class DPoPKey:
    """One proof key and its algorithm; makes proofs (see the module docstring)."""

    __slots__ = ("algorithm", "_key", "public_jwk", "_header", "_sign")

    def __init__(self, key: PrivateKey, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.algorithm = check_algorithm(algorithm)
        self._key = _check_key(key, algorithm)
        self.public_jwk = _public_jwk(self._key, algorithm)
        header = {"typ": "dpop+jwt", "alg": algorithm, "jwk": self.public_jwk}
        self._header = b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
        self._sign = self._signer()

    @classmethod
    def generate(cls, algorithm: str = DEFAULT_ALGORITHM) -> DPoPKey:
        check_algorithm(algorithm)
        key: PrivateKey
        if algorithm in EC_CURVES:
            key = ec.generate_private_key(EC_CURVES[algorithm][0]())
        elif algorithm in OKP_ALGORITHMS:
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, algorithm)

    @classmethod
    def from_pem(cls, pem: str | bytes, algorithm: str | None = None) -> DPoPKey:
        """Load a stored key; raises InvalidConfiguration(field="dpop_key") without ever
        quoting the text."""
        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data.strip(), password=None)
        except Exception:  # ValueError, TypeError, UnsupportedAlgorithm
            raise InvalidConfiguration(
                "the DPoP key is not an unencrypted PEM private key", field="dpop_key"
            ) from None
        return cls(key, algorithm or infer_algorithm(key))  # type: ignore[arg-type]

    def to_pem(self) -> str:
        """PKCS#8 PEM, unencrypted: the caller stores it encrypted."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def __repr__(self) -> str:
        return f"<DPoPKey {self.algorithm} jkt={self.jkt()}>"

    def __reduce__(self) -> Any:
        raise TypeError("DPoPKey is not picklable: store to_pem() encrypted instead")

    def jkt(self) -> str:
        """The key's RFC 7638 thumbprint: what a DPoP-bound token's ``cnf.jkt`` holds."""
        return jwk_thumbprint(self.public_jwk)

    def _signer(self) -> Any:
        key = self._key
        algorithm = self.algorithm
        if isinstance(key, ec.EllipticCurvePrivateKey):
            size = EC_CURVES[algorithm][2]
            ecdsa = ec.ECDSA(
                {"ES256": hashes.SHA256(), "ES384": hashes.SHA384()}.get(algorithm, hashes.SHA512())
            )

            def sign_ec(data: bytes) -> bytes:
                # JWS wants raw R||S, cryptography gives DER (RFC 7518 §3.4).
                r, s = decode_dss_signature(key.sign(data, ecdsa))
                return r.to_bytes(size, "big") + s.to_bytes(size, "big")

            return sign_ec
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign
        if algorithm == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return lambda data: key.sign(data, pss, hashes.SHA256())
        return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def claims(
        self,
        htm: str,
        htu: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The proof's payload (RFC 9449 §4.2); also what a preview shows."""
        claims: dict[str, Any] = {
            # 128 random bits: unique per proof, so replay caches can trust it.
            "jti": secrets.token_urlsafe(16),
            "htm": htm.upper(),
            "htu": normalise_htu(htu),
            "iat": int(now if now is not None else time.time()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return claims

    @property
    def header(self) -> dict[str, Any]:
        return {"typ": "dpop+jwt", "alg": self.algorithm, "jwk": dict(self.public_jwk)}

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> str:
        """A fresh DPoP proof for one request."""
        claims = self.claims(htm, htu, nonce=nonce, access_token=access_token)
        signing_input = self._header + b64url(json.dumps(claims, separators=(",", ":")).encode())
        return signing_input + "." + b64url(self._sign(signing_input.encode("ascii")))


# RFC 9449 §8.1: nonce = 1*NQCHAR; NQCHAR = %x21 / %x23-5B / %x5D-7E.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")


def valid_nonce(value: object) -> bool:
    return isinstance(value, str) and _NONCE.fullmatch(value) is not None


def origin_of(url: str) -> str:
    parts = urlsplit(normalise_htu(url))
    return f"{parts.scheme}://{parts.netloc}"


class NonceStore:
    """The latest ``DPoP-Nonce`` each origin gave, shared by threads, bounded: the
    oldest origins are forgotten first (a nonce is only ever a hint; a server that
    wants a fresh one says so)."""

    def __init__(self, max_origins: int = 1024) -> None:
        self.max_origins = max_origins
        self._nonces: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> str | None:
        key = origin_of(url)
        with self._lock:
            return self._nonces.get(key)

    def set(self, url: str, nonce: str) -> None:
        if not valid_nonce(nonce):
            return  # malformed or oversized: ignore rather than echo it back
        key = origin_of(url)
        with self._lock:
            self._nonces[key] = nonce
            self._nonces.move_to_end(key)
            while len(self._nonces) > self.max_origins:
                self._nonces.popitem(last=False)

    def update(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Keep the response's ``DPoP-Nonce`` (headers must be case-insensitive, as
        requests' are); returns it when there was a valid one."""
        nonce = headers.get("DPoP-Nonce")
        if nonce is None or not valid_nonce(nonce):
            return None
        self.set(url, nonce)
        return nonce

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()

    def __len__(self) -> int:
        return len(self._nonces)


def wants_nonce_token(status: int, payload: object) -> bool:
    """A token endpoint asking for a nonce: HTTP 400, ``error: use_dpop_nonce`` (§8)."""
    return status == 400 and isinstance(payload, dict) and payload.get("error") == "use_dpop_nonce"


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})(?:\s+|,|$)")
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9._~+/-]+=*\s*(?:,|$)")
MAX_CHALLENGE_CHARS = 8192


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` as (scheme in lower case, params with lower-case names)
    (RFC 9110 §11.6.1). Tolerant: stops at the first thing it cannot read."""
    text = header[:MAX_CHALLENGE_CHARS]
    challenges: list[tuple[str, dict[str, str]]] = []
    position = 0
    while position < len(text):
        scheme = _SCHEME.match(text, position)
        if scheme is None:
            break
        position = scheme.end()
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(text, position)
            if param is None:
                break
            quoted, bare = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            params[param.group(1).lower()] = value
            position = param.end()
        if not params:
            token68 = _TOKEN68.match(text, position)
            if token68 is not None and token68.end() > position:
                position = token68.end()
        challenges.append((scheme.group(1).lower(), params))
    return challenges


def wants_nonce_resource(status: int, headers: Mapping[str, str]) -> bool:
    """A resource asking for a nonce: HTTP 401 with ``WWW-Authenticate: DPoP
    error="use_dpop_nonce"`` (RFC 9449 §9)."""
    if status != 401:
        return False
    header = headers.get("WWW-Authenticate") or ""
    return any(
        scheme == "dpop" and params.get("error") == "use_dpop_nonce"
        for scheme, params in parse_challenges(header)
    )
