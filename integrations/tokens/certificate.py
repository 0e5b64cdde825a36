"""``client_certificate``: a ``client_credentials`` grant authenticated by the TLS client
certificate alone (RFC 8705 §2: ``tls_client_auth`` by the certificate's subject,
``self_signed_tls_client_auth`` by its registered key; the request is the same for both).

The certificate is the integration's ``client_certificate`` secret, which its sessions
present to the token endpoint (the discovered ``mtls_endpoint_aliases`` entry when only
``issuer`` is set) and to the API, so a certificate-bound token (``cnf.x5t#S256``) is
accepted there. ``dpop`` adds a DPoP proof as for the other flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms

from .base import OptionsForm, URLField
from .endpoint import TokenEndpoint
from .sender import TokenEndpointOptions

if TYPE_CHECKING:
    import requests


class ClientCertificateOptions(TokenEndpointOptions):
    client_id = forms.CharField(help_text="The client registered with the certificate.")
    token_url = URLField(
        required=False,
        help_text="The token endpoint (its mTLS address); discovered from the issuer when "
        "empty.",
    )


class ClientCertificateProvider(TokenEndpoint):
    type = "client_certificate"
    account_options: ClassVar[tuple[str, ...]] = ("scope",)
    label = "Client certificate, mutual TLS (RFC 8705 tls_client_auth)"
    Options: ClassVar[OptionsForm] = ClientCertificateOptions
    secret_fields: ClassVar[tuple[str, ...]] = ()
    requires_certificate = True
    delivery = (
        "a client_credentials grant at token_url over TLS with the client certificate "
        "(RFC 8705); the access_token is sent as Bearer over the same certificate, or as "
        "DPoP with a proof"
    )

    def form(self, credential: str) -> dict[str, Any]:
        form: dict[str, Any] = {
            **(self.options.get("params") or {}),
            "grant_type": "client_credentials",
            "client_id": self.options["client_id"],
        }
        if self.options.get("scope"):
            form["scope"] = self.options["scope"]
        return form

    def preview(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        """The token request's form (it holds no secret) and the DPoP proofs; no JWT."""
        return {
            "auth_type": self.type,
            "header": {},
            "claims": {},
            "token_request": {"url": self.endpoint, "form": self.form("")},
            "delivery": self.delivery,
            **self.sender_preview(),
        }
