"""``docusign``: DocuSign's JWT grant (preset of ``jwt_grant``).

DocuSign's rules: RS256, iss = the integration key, sub = the user ID (GUID) to
impersonate, aud = the bare OAuth host (``account-d.docusign.com`` for the developer
environment, ``account.docusign.com`` in production), a ``scope`` claim (``signature
impersonation``), exp at most an hour after iat. The user must have granted consent
once; until then the grant is refused with ``consent_required``.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ..base import PresetOptions, URLField, lifetime_field, secret_field
from ..grant import GrantProvider
from ..registry import register
from .common import signing_options

HOSTS = [("account-d.docusign.com", "Developer"), ("account.docusign.com", "Production")]


class DocuSignOptions(PresetOptions):
    max_lifetime = 3600
    cap_from_iat = True

    integration_key = forms.CharField(help_text="The app's integration key (client ID).")
    user_id = forms.RegexField(
        regex=re.compile(r"^[0-9a-f-]{36}$", re.I), help_text="The user's API user ID (GUID)."
    )
    oauth_host = forms.ChoiceField(choices=HOSTS, initial="account-d.docusign.com")
    scopes = forms.CharField(initial="signature impersonation", help_text="Space-separated.")
    token_url = URLField(required=False, help_text="Defaults to https://{oauth_host}/oauth/token.")
    private_key = secret_field("Private key", "The app's RSA PEM private key.")
    lifetime = lifetime_field(initial=3570, cap=max_lifetime)


@register
class DocuSignProvider(GrantProvider):
    type = "docusign"
    label = "DocuSign (JWT grant)"
    Options = DocuSignOptions
    secret_fields = ("private_key",)

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        host = options["oauth_host"]
        return {
            **signing_options(DocuSignOptions, options),
            "claims": {
                "iss": options["integration_key"],
                "sub": options["user_id"],
                "aud": host,
                "scope": options["scopes"],
            },
            "token_url": options.get("token_url") or f"https://{host}/oauth/token",
        }
