"""What an operator may see of an integration's credentials: the next token's header
and claims (never a signature), their times made readable, and the public half of its
key.

The admin builds its preview panel on these. Nothing here returns a secret: a shared
HMAC secret has no public half, so ``public_key_info`` answers None for it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests

from ..urlpaths import join_url
from .base import IntegrationLike, JWTProvider, TokenProvider
from .registry import build_provider
from .signing import jwk_thumbprint

TIME_CLAIMS = ("iat", "nbf", "exp")


def preview(integration: IntegrationLike) -> dict[str, Any]:
    """``{"auth_type", "header", "claims", "delivery", "times"}`` of the next token.

    For a flow that signs each request (``cacheable`` False), the claims are those of
    the integration's test request. ``times`` is ``claim_times(claims)``. Raises
    InvalidConfiguration or SecretDecryptionError when the integration cannot mint.
    """
    provider = build_provider(integration)
    shown = provider.preview(shown_request(provider))
    shown["times"] = claim_times(shown.get("claims") or {})
    return shown


def claim_times(claims: dict[str, Any], now: float | None = None) -> list[tuple[str, str]]:
    """``[(name, text)]`` for iat/nbf/exp: the UTC time and how far from now, for an
    operator checking a lifetime. A value no calendar holds (``{"nbf": 1e20}``, NaN) is
    shown as the raw number, never raised on."""
    now = time.time() if now is None else now
    times = []
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        try:
            when = datetime.fromtimestamp(value, UTC)
            offset = int(value - now)
        except (OverflowError, OSError, ValueError):
            times.append((name, f"{value!r} (not a time this calendar can show)"))
            continue
        relative = f"in {offset} s" if offset >= 0 else f"{-offset} s ago"
        times.append((name, f"{when:%Y-%m-%d %H:%M:%S} UTC ({relative})"))
    return times


def shown_request(provider: TokenProvider) -> requests.PreparedRequest | None:
    """The request whose token is shown: the integration's test request for a flow
    that signs each request (``cacheable`` False); None for a token that covers any."""
    if provider.cacheable:
        return None
    integration = provider.integration
    test = integration.test_request or {}
    return requests.Request(
        str(test.get("method", "GET")).upper(),
        join_url(integration.base_url, str(test.get("path", ""))),
    ).prepare()


def public_key_info(integration: IntegrationLike) -> dict[str, Any] | None:
    """``{"algorithm", "kid", "pem", "jwk", "thumbprint", "custody"}`` of the signing
    key's public half, for registering it with the remote; None for a shared secret. The
    JWK's ``kid`` is the key's id (``key_id``, else the thumbprint), as the JWKS has it."""
    provider = build_provider(integration)
    if not isinstance(provider, JWTProvider):
        return None
    signer = provider.signer
    jwk = signer.public_jwk  # a device is asked once per process (security.md #32)
    if jwk is None:
        return None
    return {
        "algorithm": signer.algorithm,
        "kid": signer.kid,
        "pem": signer.public_pem,
        "jwk": jwk,
        "thumbprint": jwk_thumbprint(jwk),
        "custody": custody_label(signer.custody),
    }


def custody_label(signer: Any) -> str:
    """Where the key lives, for operators: "stored key", "PKCS#11 token 'x'", "AWS KMS"."""
    token_label = getattr(signer, "token_label", None)
    if token_label is not None:
        return f"PKCS#11 token {token_label!r}, key {getattr(signer, 'key_label', '')!r}"
    key_id = getattr(signer, "key_id", None)
    if key_id is not None:
        return f"AWS KMS key {key_id}"
    return "stored key (encrypted)"
