"""``GET integrations/<slug>/jwks.json``: the public keys of an integration, for
providers that fetch a client's keys from a ``jwks_uri`` (Okta, Auth0, any OpenID
provider).

``{"keys": [...]}`` holds the active, next and retired keys' public JWKs (``kid``,
``alg``, ``use: "sig"``) built from the allowlist of public members (security.md #33),
so a private member can never be published. Public keys are public: no authentication.
``Cache-Control: public, max-age=300`` and an ETag (a matching ``If-None-Match`` gets
304). 404 for an unknown or disabled integration or one with only HMAC secrets; 503
when the active key's device cannot say its public key (publishing the JWKS without it
would make the provider drop the key that signs).
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from . import signingkeys
from .exceptions import IntegrationError, SigningError
from .models import Integration
from .signers.base import public_members

logger = logging.getLogger(__name__)
MAX_AGE = 300


def not_found() -> HttpResponse:
    return JsonResponse({"error": "not found"}, status=404)


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` (a list, ``*``, weak validators) against our strong ETag."""
    offered = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in offered or etag in offered


@require_safe
def jwks(request: HttpRequest, slug: str) -> HttpResponse:
    integration = Integration.objects.filter(slug=slug, enabled=True).first()
    if integration is None:
        return not_found()
    try:
        document = signingkeys.jwks(integration)
    except SigningError as exc:
        logger.warning("JWKS of %s: %s", slug, exc)
        unavailable = JsonResponse({"error": "signing key unavailable"}, status=503)
        unavailable["Cache-Control"] = "no-store"
        unavailable["Retry-After"] = "30"
        return unavailable
    except IntegrationError:
        return not_found()  # no usable key configuration: nothing to publish
    if document is None:
        return not_found()
    keys = [public_members(jwk) for jwk in document["keys"]]  # the allowlist, once more
    body = json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    response: HttpResponse
    if etag_matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response
