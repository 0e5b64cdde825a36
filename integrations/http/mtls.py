"""Mutual TLS (RFC 8705): the ``client_certificate`` secret, checked and loaded.

The secret is one PEM text: the client certificate, any intermediates, and its private
key. ``parse_client_certificate`` checks it on save (security.md #35): it parses, the
key matches the first certificate, the certificate is valid now (a warning when it
expires within 30 days), and the key is strong enough (RSA >= 2048 bits, EC P-256 or
larger, Ed25519/Ed448). Errors name the field ``client_certificate`` and never quote it.

``client_ssl_context`` loads it into an ``ssl.SSLContext`` without writing the key
where another user could read it. Python's ``ssl`` only reads a key from a path, so on
Linux the PEM goes into an anonymous memory file (``memfd_create``) read through
``/proc/self/fd/N``: nothing on any file system, and only this process (or one allowed
to ptrace it) can open it. Elsewhere it is written 0600 in a fresh 0700 directory that
is removed as soon as the context has read it.

``ClientCertificateAdapter`` is the ``GuardedAdapter`` (address guard, TLS
verification, bounds) with that context on its HTTPS pools.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration
from .adapter import GuardedAdapter

logger = logging.getLogger("integrations.mtls")
FIELD = "client_certificate"
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


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that exists on no file system: a memfd seen through
    /proc/self/fd. Raises OSError where there is no memfd or /proc."""
    fd = os.memfd_create("integrations-client-certificate", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(path):
            raise OSError("no /proc/self/fd")
        yield path
    finally:
        os.close(fd)


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A 0600 file in a fresh 0700 directory (mkdtemp), removed on exit."""
    directory = tempfile.mkdtemp(prefix="integrations-mtls-")  # created 0700
    try:
        path = os.path.join(directory, "client.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@sensitive_variables("certificate", "data")
def load_client_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> str:
    """Load the chain and key into ``context``; returns how: "memfd" or "private-file"."""
    data = certificate.pem.encode("ascii")
    try:
        with contextlib.ExitStack() as stack:
            try:
                if not hasattr(os, "memfd_create"):
                    raise OSError("no memfd_create")
                path, method = stack.enter_context(_memory_file(data)), "memfd"
            except OSError:
                path, method = stack.enter_context(_private_file(data)), "private-file"
            context.load_cert_chain(path)
    except ssl.SSLError:
        raise _refuse("the TLS library refused the certificate or key") from None
    return method


@sensitive_variables("text")
def client_ssl_context(
    text: str | ClientCertificate, *, ca_bundle: str = "", now: datetime | None = None
) -> ssl.SSLContext:
    """A verifying client context (system CAs, or ``ca_bundle``) presenting the
    certificate."""
    certificate = (
        text if isinstance(text, ClientCertificate) else parse_client_certificate(text, now=now)
    )
    context = ssl.create_default_context(cafile=ca_bundle or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_client_certificate(context, certificate)
    for warning in certificate.warnings:
        logger.warning("%s (subject %s)", warning, certificate.subject)
    return context


class ClientCertificateAdapter(GuardedAdapter):
    """``GuardedAdapter`` whose HTTPS connections present a client certificate.

    The context goes into the pool manager's keyword arguments, which urllib3 gives
    only to HTTPS pools; the guarded connection classes, the verification check and
    the bounds stay the parent's. requests still passes ``cert_reqs=CERT_REQUIRED``
    (and the CA bundle), so verification stays on.
    """

    def __init__(self, ssl_context: ssl.SSLContext, *, pool_maxsize: int | None = None) -> None:
        self.ssl_context = ssl_context
        super().__init__(pool_maxsize=pool_maxsize)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.ssl_context
        super().init_poolmanager(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an adapter holding a client key is not picklable")


def mount_client_certificate(session: Any, context: ssl.SSLContext) -> ClientCertificateAdapter:
    """Mount a ``ClientCertificateAdapter`` for https:// on ``session`` (a
    ``requests.Session``, e.g. a ``GuardedSession``), keeping its pool size."""
    current = session.get_adapter("https://x")
    pool_maxsize = getattr(current, "_pool_maxsize", None)
    adapter = ClientCertificateAdapter(context, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    return adapter
