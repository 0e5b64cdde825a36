"""What an operator may see of an integration's credentials: the next token's header
and claims (never a signature) and the public half of its key.

The admin builds its preview panel on these. Nothing here returns a secret: a shared
HMAC secret has no public half, so ``public_key_info`` answers None for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from .base import JWTProvider, TokenProvider
from .signing import jwk_thumbprint

if TYPE_CHECKING:
    from ..models import Integration


def preview(integration: Integration) -> dict[str, Any]:
    """``{"auth_type", "header", "claims", "delivery"}`` of the next token.

    For a flow that signs each request (``cacheable`` False), the claims are those of
    the integration's test request. Raises InvalidConfiguration or
    SecretDecryptionError when the integration cannot mint.
    """
    from ..validation import build_provider

    provider = build_provider(integration)
    return provider.preview(shown_request(provider))


def shown_request(provider: TokenProvider) -> requests.PreparedRequest | None:
    """The request whose token is shown: the integration's test request for a flow
    that signs each request (``cacheable`` False); None for a token that covers any."""
    from ..http.session import join_url

    if provider.cacheable:
        return None
    integration = provider.integration
    test = integration.test_request or {}
    return requests.Request(
        str(test.get("method", "GET")).upper(),
        join_url(integration.base_url, str(test.get("path", ""))),
    ).prepare()


def public_key_info(integration: Integration) -> dict[str, Any] | None:
    """``{"algorithm", "kid", "pem", "jwk", "thumbprint"}`` of the signing key's public
    half, for registering it with the remote; None for a shared secret."""
    from ..validation import build_provider

    provider = build_provider(integration)
    if not isinstance(provider, JWTProvider):
        return None
    signer = provider.signer
    jwk = signer.public_jwk
    if jwk is None:
        return None
    kid = signer.headers.get("kid", "")
    thumbprint = jwk_thumbprint(jwk)
    published = {**jwk, "use": "sig", "alg": signer.algorithm}
    if kid:
        published["kid"] = kid
    return {
        "algorithm": signer.algorithm,
        "kid": kid,
        "pem": signer.public_pem,
        "jwk": published,
        "thumbprint": thumbprint,
    }
