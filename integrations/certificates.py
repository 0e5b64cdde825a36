"""Client certificates (RFC 8705): the ``client_certificate`` secret, parsed and checked.

The secret is one PEM text: the client certificate, any intermediates, and its private
key. It belongs to the integration, not to an auth type: any integration may present
one to its API, token and discovery endpoints, and the ``client_certificate`` auth type
authenticates with it alone. ``parse_client_certificate`` checks it on save and when a
session loads it (security.md #35): it parses, the key matches the first certificate,
the certificate is valid now (a warning when it expires within 30 days), and the key is
strong enough (RSA >= 2048 bits, EC P-256 or larger, Ed25519/Ed448). Errors name the
field ``client_certificate`` and never quote it.

Loading it into a TLS context without writing the key where another user could read
it is ``http.mtls``'s job.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.views.decorators.debug import sensitive_variables

from .exceptions import InvalidConfiguration

# The secret's name among an integration's encrypted secrets.
CLIENT_CERTIFICATE = "client_certificate"
FIELD = CLIENT_CERTIFICATE
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
EXPIRY_WARNING = timedelta(days=30)
MAX_PEM_CHARS = 64 * 1024
_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\s]*?-----END \1-----", re.ASCII
)
_KEY_LABELS = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"}


def _refuse(message: str) -> InvalidConfiguration:
    return InvalidConfiguration(message, field=FIELD)


@dataclass(frozen=True)
class ClientCertificate:
    """What a checked ``client_certificate`` secret holds, safe to show."""

    subject: str
    issuer: str
    not_after: datetime
    thumbprint: str  # x5t#S256: what a certificate-bound token's cnf holds
    key_description: str
    self_signed: bool
    warnings: tuple[str, ...]
    # The normalised PEM (certificates then PKCS#8 key): what the TLS context loads.
    pem: str

    def __repr__(self) -> str:
        return f"<ClientCertificate {self.subject!r} until {self.not_after:%Y-%m-%d}>"


def _check_key_strength(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise _refuse(
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}"
            )
        return f"RSA {key.key_size}-bit"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise _refuse(f"EC keys must be on P-256 or larger; this one is on {key.curve.name}")
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "Ed448"
    raise _refuse("the private key must be RSA, EC or EdDSA")


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url SHA-256 of the certificate's DER."""
    digest = certificate.fingerprint(hashes.SHA256())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@sensitive_variables("text", "blocks", "key_blocks", "key", "key_pem")
def parse_client_certificate(text: str, *, now: datetime | None = None) -> ClientCertificate:
    """Check a ``client_certificate`` secret (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise _refuse("give the PEM certificate chain and its private key")
    if len(text) > MAX_PEM_CHARS:
        raise _refuse(f"the PEM text is larger than {MAX_PEM_CHARS // 1024} KB")
    blocks = [(match.group(1), match.group(0)) for match in _BLOCK.finditer(text)]
    if any(label == "ENCRYPTED PRIVATE KEY" for label, _ in blocks):
        raise _refuse("the private key is encrypted; give it unencrypted (it is stored encrypted)")
    key_blocks = [pem for label, pem in blocks if label in _KEY_LABELS]
    cert_blocks = [pem for label, pem in blocks if label == "CERTIFICATE"]
    if len(key_blocks) != 1:
        raise _refuse(f"needs exactly one PEM private key; found {len(key_blocks)}")
    if not cert_blocks:
        raise _refuse("needs the client certificate (PEM CERTIFICATE) with the key")
    try:
        certificates = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in cert_blocks]
    except ValueError:
        raise _refuse("a certificate does not parse") from None
    try:
        key = serialization.load_pem_private_key(key_blocks[0].encode("ascii"), password=None)
    except Exception:  # ValueError, TypeError, UnsupportedAlgorithm
        raise _refuse("the private key does not parse as an unencrypted PEM key") from None
    key_description = _check_key_strength(key)
    leaf = certificates[0]
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        raise _refuse("the private key does not belong to the first certificate")
    moment = now or datetime.now(UTC)
    if leaf.not_valid_before_utc > moment:
        raise _refuse(f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    if leaf.not_valid_after_utc <= moment:
        raise _refuse(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    warnings: list[str] = []
    if leaf.not_valid_after_utc - moment <= EXPIRY_WARNING:
        days = (leaf.not_valid_after_utc - moment).days
        warnings.append(
            f"the client certificate expires on {leaf.not_valid_after_utc:%Y-%m-%d} "
            f"(in {days} day{'s' if days != 1 else ''})"
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    chain = "".join(
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certificates
    )
    return ClientCertificate(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        thumbprint=thumbprint(leaf),
        key_description=key_description,
        self_signed=leaf.subject == leaf.issuer,
        warnings=tuple(warnings),
        pem=chain + key_pem,
    )


class HasSecrets(Protocol):
    def get_secrets(self) -> dict[str, str]: ...


def stored_certificate(integration: HasSecrets) -> ClientCertificate | None:
    """The integration's checked client certificate, None when it has none. Raises
    InvalidConfiguration (an expired certificate, a key that no longer matches) and
    SecretDecryptionError."""
    text = integration.get_secrets().get(CLIENT_CERTIFICATE)
    return parse_client_certificate(text) if text else None
