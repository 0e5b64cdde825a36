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

from ..base import FlowOptions, URLField
from ..grant import GrantProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions

HOSTS = [("account-d.docusign.com", "Developer"), ("account.docusign.com", "Production")]


class DocuSignProvider(Preset, GrantProvider):
    type = "docusign"
    account_options = ("user_id", "scopes", "claims")
    label = "DocuSign (JWT grant)"
    signing_key = PresetKey("RS256", "The app's RSA PEM private key.")
    lifetime = Lifetime(initial=3570, cap=3600, from_iat=True)

    class Options(PresetOptions):
        integration_key = forms.CharField(help_text="The app's integration key (client ID).")
        user_id = forms.RegexField(
            regex=re.compile(r"^[0-9a-f-]{36}$", re.I), help_text="The user's API user ID (GUID)."
        )
        oauth_host = forms.ChoiceField(choices=HOSTS, initial="account-d.docusign.com")
        scopes = forms.CharField(initial="signature impersonation", help_text="Space-separated.")
        token_url = URLField(
            required=False, help_text="Defaults to https://{oauth_host}/oauth/token."
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        host = options["oauth_host"]
        return {
            "claims": {
                "iss": options["integration_key"],
                "sub": options["user_id"],
                "aud": host,
                "scope": options["scopes"],
            },
            "token_url": options.get("token_url") or f"https://{host}/oauth/token",
        }
