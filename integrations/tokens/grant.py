"""``jwt_grant``: RFC 7523 §2.1, the JWT bearer authorization grant (docs/reference.md,
Auth types).

The signed JWT is the grant: POSTed to ``token_url`` as ``assertion``; the returned
``access_token`` is sent as Bearer (or DPoP) until ``expires_in``. ``aud`` defaults to
the token URL, as RFC 7523 §3 asks.

Some servers also want the client authenticated with the grant (RFC 7523 §2.1 leaves it
to them): ``client_id`` alone is sent as a form field; with the ``client_secret`` secret
as ``client_secret_post`` (RFC 6749 §2.3.1); with ``client_assertion`` on, as a client
assertion signed with the same key (iss = sub = client_id, RFC 7523 §2.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .assertion import ASSERTION_TYPE
from .base import JWTOptions, OptionsForm, secret_field
from .endpoint import TokenEndpointProvider
from .sender import TokenEndpointOptions
from .signing import standard_claims

if TYPE_CHECKING:
    import requests

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class GrantOptions(TokenEndpointOptions, JWTOptions):
    fixed_params = (
        "grant_type", "assertion", "client_secret", "client_assertion", "client_assertion_type"
    )

    client_id = forms.CharField(
        required=False, help_text="Sent with the grant, for servers that authenticate it."
    )
    client_secret = secret_field(
        "Client secret", "With client_id: sent as client_secret_post (RFC 6749 §2.3.1)."
    )
    client_assertion = forms.BooleanField(
        required=False,
        initial=False,
        help_text="Authenticate client_id with a client assertion signed by the same key.",
    )

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (data.get("client_secret") or data.get("client_assertion")) and not data.get(
            "client_id"
        ):
            self.add_error("client_id", "Client authentication needs the client_id.")
        if data.get("client_secret") and data.get("client_assertion"):
            self.add_error(
                "client_assertion", "Use either the client secret or a client assertion."
            )
        return data


class GrantProvider(TokenEndpointProvider):
    type = "jwt_grant"
    account_options: ClassVar[tuple[str, ...]] = ("claims", "scope")
    label = "JWT bearer grant (RFC 7523 §2.1)"
    Options: ClassVar[OptionsForm] = GrantOptions
    secret_fields: ClassVar[tuple[str, ...]] = (
        *TokenEndpointProvider.secret_fields,
        "client_secret",
    )
    delivery = (
        "POSTed to token_url as assertion (RFC 7523 §2.1); the access_token is sent as "
        "Bearer, or as DPoP with a proof"
    )

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        claims = super().claims(request)
        claims.setdefault("aud", self.endpoint_url())
        return claims

    @sensitive_variables()
    def form(self, credential: str) -> dict[str, Any]:
        form: dict[str, Any] = {
            **(self.options.get("params") or {}),
            "grant_type": GRANT_TYPE,
            "assertion": credential,
        }
        if self.options.get("scope"):
            form["scope"] = self.options["scope"]
        client_id = self.options.get("client_id")
        if client_id:
            form["client_id"] = client_id
            if self.options.get("client_secret"):
                form["client_secret"] = self.options["client_secret"]
            elif self.options.get("client_assertion"):
                form["client_assertion_type"] = ASSERTION_TYPE
                form["client_assertion"] = self.client_assertion(client_id)
        return form

    @sensitive_variables()
    def client_assertion(self, client_id: str) -> str:
        """RFC 7523 §2.2's client assertion, signed with the grant's key."""
        claims = standard_claims(
            {"iss": client_id, "sub": client_id, "aud": self.endpoint},
            lifetime=min(self.options["lifetime"], 300),
            clock_skew=self.options.get("clock_skew") or 0,
            jti=True,
        )
        return self.signer.sign(claims)
