"""Mutual TLS (RFC 8705): the ``client_certificate`` secret loaded into TLS.

The secret is parsed and checked by ``integrations.certificates`` (security.md #35;
``parse_client_certificate`` is re-exported here).

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

import contextlib
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from django.views.decorators.debug import sensitive_variables

from ..certificates import (
    FIELD,
    ClientCertificate,
    HasSecrets,
    parse_client_certificate,
    stored_certificate,
    thumbprint,
)
from ..exceptions import InvalidConfiguration
from .adapter import GuardedAdapter

__all__ = [
    "FIELD",
    "ClientCertificate",
    "ClientCertificateAdapter",
    "client_ssl_context",
    "integration_ssl_context",
    "load_client_certificate",
    "mount_client_certificate",
    "parse_client_certificate",
    "thumbprint",
]

logger = logging.getLogger("integrations.mtls")


def _refuse(message: str) -> InvalidConfiguration:
    return InvalidConfiguration(message, field=FIELD)


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


class IntegrationWithCertificate(HasSecrets, Protocol):
    @property
    def ca_bundle(self) -> str: ...


def integration_ssl_context(
    integration: IntegrationWithCertificate,
) -> tuple[ClientCertificate, ssl.SSLContext] | None:
    """The integration's client certificate and a context presenting it (trusting its
    ``ca_bundle``), or None when it has none: what its API, token-endpoint and discovery
    sessions mount (docs/reference.md, Sender-constrained tokens and discovery)."""
    certificate = stored_certificate(integration)
    if certificate is None:
        return None
    return certificate, client_ssl_context(certificate, ca_bundle=integration.ca_bundle)
