"""The admin form's client certificate (RFC 8705): a write-only secret of the
integration itself, whatever its auth type, and what is shown of the stored one
(subject, expiry, thumbprint; a warning within 30 days of expiry, security.md #35)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.views.decorators.debug import sensitive_variables

from ..certificates import CLIENT_CERTIFICATE, parse_client_certificate
from ..exceptions import IntegrationError
from .fields import SecretTextarea

if TYPE_CHECKING:
    from ..models import Integration

# The form fields of the "Client certificate" fieldset.
TLS_FIELDS = [CLIENT_CERTIFICATE]
HELP = (
    "PEM certificate chain and its private key, presented in TLS to the API, the token "
    "endpoint and discovery (mutual TLS, RFC 8705). Checked on save: the key matches, the "
    "certificate is valid, the key is strong enough. Write-only: leave blank to keep the "
    "stored one."
)


def client_certificate_field() -> forms.CharField:
    return forms.CharField(
        label="Client certificate",
        required=False,
        strip=False,
        widget=SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text=HELP,
    )


@sensitive_variables("pem")
def stored_description(integration: Integration) -> str:
    """What the stored certificate is (never its key), or "" when there is none."""
    if not integration.pk or not integration.encrypted_secrets:
        return ""
    try:
        pem = integration.get_secrets().get(CLIENT_CERTIFICATE)
        if not pem:
            return ""
        certificate = parse_client_certificate(pem)
    except IntegrationError as exc:
        return f"Stored, but unusable: {getattr(exc, 'message', exc)}"
    text = (
        f"Stored: {certificate.subject}, issued by {certificate.issuer}, expires "
        f"{certificate.not_after:%Y-%m-%d}; x5t#S256 {certificate.thumbprint}."
    )
    return " ".join([text, *(f"Warning: {w}." for w in certificate.warnings)])
