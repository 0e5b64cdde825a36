"""Signing JWTs: the JOSE header and key id around a key-custody signer.

Every JWT a flow or preset mints goes through ``JWTSigner.sign`` and from there through
``signers.base.sign_jwt``: the app assembles header, claims and signature itself and asks
the key's signer (a local key, a PKCS#11 token, AWS KMS) to sign the signing input only,
so a key held by a device never leaves it (security.md #32). The header's ``alg`` is the
signer's, never a configured header's (security.md #1).

The key's id (``kid``) is the configured ``key_id``, else the RFC 7638 thumbprint of its
public key. The header carries it when ``key_id`` is set (as it always has) or when
``send_kid`` is on: off by default, because a server that registered a key without a kid
may refuse a token naming one; on for rollover, where the server needs it to choose
among several keys.

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import SigningError
from ..signers.base import Signer as KeySigner
from ..signers.base import sign_jwt
from ..signers.local import LocalSigner
from .signing import check_headers, load_signing_key


class JWTSigner:
    """Signs JWTs with one key: ``custody`` when given (a device, or a cached local
    signer), else the key ``material`` (PEM or shared secret) checked and held here."""

    @sensitive_variables("material")
    def __init__(
        self,
        algorithm: str,
        material: str = "",
        *,
        key_id: str = "",
        send_kid: bool = False,
        extra_headers: dict[str, Any] | None = None,
        custody: KeySigner | None = None,
    ) -> None:
        headers = dict(extra_headers or {})
        check_headers(headers)
        headers["typ"] = headers.get("typ", "JWT")
        if custody is None:
            load_signing_key(algorithm, material)  # the engine's checks (security.md #2-3)
            custody = LocalSigner(algorithm, material, kid=key_id)
        if custody.algorithm != algorithm:
            raise SigningError(f"the signer signs {custody.algorithm}, not {algorithm}")
        self.algorithm = algorithm
        self.custody = custody
        self.key_id = key_id
        self.send_kid = send_kid
        self._extra = headers
        self._thumbprint = ""

    def __repr__(self) -> str:
        return f"<JWTSigner {self.algorithm} {type(self.custody).__name__} kid={self.key_id!r}>"

    @property
    def symmetric(self) -> bool:
        return self.custody.symmetric

    @property
    def kid(self) -> str:
        """The key's id: ``key_id`` when configured, else its RFC 7638 thumbprint ("" for
        a shared secret without ``key_id``). A device is asked for its public key once."""
        if self.key_id or self.custody.symmetric:
            return self.key_id
        if not self._thumbprint:
            self._thumbprint = self.custody.thumbprint()
        return self._thumbprint

    @property
    def headers(self) -> dict[str, Any]:
        """The JOSE header fields besides ``alg``: ``typ``, configured ones, ``kid``."""
        headers = dict(self._extra)
        kid = self.key_id or (self.kid if self.send_kid else "")
        if kid:
            headers["kid"] = kid
        return headers

    @sensitive_variables("token")
    def sign(self, claims: dict[str, Any]) -> str:
        token = sign_jwt(self.custody, claims, self.headers)
        return token

    @property
    def public_pem(self) -> str | None:
        """The public half as PEM; None for a shared secret."""
        return None if self.symmetric else self.custody.public_pem()

    @property
    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK (allowlisted members only, security.md #33) with ``kid``,
        ``alg`` and ``use``; None for a shared secret."""
        if self.symmetric:
            return None
        return {**self.custody.public_jwk(), "kid": self.kid}
