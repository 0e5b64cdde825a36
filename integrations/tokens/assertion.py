"""``client_assertion``: RFC 7523 §2.2 client authentication, OpenID Connect's
``private_key_jwt``, in a ``client_credentials`` grant (docs/reference.md, Auth types).

The JWT authenticates the client: iss = sub = client_id, aud = the token URL (or
``audience`` where the server wants another: FAPI 2.0 servers want the issuer, Auth0
``https://tenant/``), and a fresh uuid4 ``jti`` every time, since servers refuse a
replayed one. ``issuer`` (discovery), ``dpop`` and ``params`` as in ``tokens/sender.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .base import JWTOptions, OptionsForm
from .endpoint import TokenEndpointProvider
from .sender import TokenEndpointOptions
from .signing import standard_claims

if TYPE_CHECKING:
    import requests

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ClientAssertionOptions(TokenEndpointOptions, JWTOptions):
    fixed_params = ("grant_type", "client_assertion", "client_assertion_type")

    client_id = forms.CharField(help_text="Becomes iss and sub of the assertion.")
    audience = forms.CharField(
        required=False,
        help_text="The assertion's aud when not the token URL (FAPI 2.0: the issuer).",
    )
    claims = None  # type: ignore[assignment]  # iss, sub, aud and jti are fixed by RFC 7523


class ClientAssertionProvider(TokenEndpointProvider):
    type = "client_assertion"
    account_options: ClassVar[tuple[str, ...]] = ("scope",)
    label = "Client assertion, private_key_jwt (RFC 7523 §2.2)"
    Options: ClassVar[OptionsForm] = ClientAssertionOptions
    always_jti = True
    delivery = (
        "POSTed to token_url as client_assertion in a client_credentials grant "
        "(RFC 7523 §2.2); the access_token is sent as Bearer, or as DPoP with a proof"
    )

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        client_id = self.options["client_id"]
        audience = self.options.get("audience") or self.endpoint_url()
        return standard_claims(
            {"iss": client_id, "sub": client_id, "aud": audience},
            lifetime=self.options["lifetime"],
            clock_skew=self.options.get("clock_skew") or 0,
            jti=True,
        )

    @sensitive_variables()
    def form(self, credential: str) -> dict[str, Any]:
        form: dict[str, Any] = {
            **(self.options.get("params") or {}),
            "grant_type": "client_credentials",
            "client_id": self.options["client_id"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": credential,
        }
        if self.options.get("scope"):
            form["scope"] = self.options["scope"]
        return form
