"""``jwt_grant``: RFC 7523 §2.1, the JWT bearer authorization grant (SPEC: auth types).

The signed JWT is the grant: POSTed to ``token_url`` as ``assertion``; the returned
``access_token`` is sent as Bearer until ``expires_in``. ``aud`` defaults to the token
URL, as RFC 7523 §3 asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .base import JWTOptions, OptionsForm, URLField
from .endpoint import TokenEndpointProvider

if TYPE_CHECKING:
    import requests

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class GrantOptions(JWTOptions):
    token_url = URLField(help_text="The authorization server's token endpoint.")
    scope = forms.CharField(
        required=False, help_text="Sent as the scope parameter; space-separated."
    )


class GrantProvider(TokenEndpointProvider):
    type = "jwt_grant"
    account_options: ClassVar[tuple[str, ...]] = ("claims", "scope")
    label = "JWT bearer grant (RFC 7523 §2.1)"
    Options: ClassVar[OptionsForm] = GrantOptions
    delivery = (
        "POSTed to token_url as assertion (RFC 7523 §2.1); the access_token is sent as Bearer"
    )

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        claims = super().claims(request)
        claims.setdefault("aud", self.endpoint_url())
        return claims

    @sensitive_variables()
    def form(self, assertion: str) -> dict[str, str]:
        form = {"grant_type": GRANT_TYPE, "assertion": assertion}
        if self.options.get("scope"):
            form["scope"] = self.options["scope"]
        return form
