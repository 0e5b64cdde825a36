"""``salesforce``: Salesforce's OAuth 2.0 JWT bearer flow (preset of ``jwt_grant``).

Salesforce's rules: RS256 with the key whose certificate is on the connected app, iss =
the consumer key, sub = the username, aud = the login URL
(``https://login.salesforce.com``, ``https://test.salesforce.com`` or an Experience
Cloud site), exp within 3 minutes; the grant goes to ``{login_url}/services/oauth2/token``.
Salesforce answers without ``expires_in``: the token is reused for DEFAULT_EXPIRES_IN
and replaced early on a 401.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..base import FlowOptions, URLField
from ..grant import GrantProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions


class SalesforceProvider(Preset, GrantProvider):
    type = "salesforce"
    account_options = ("username", "claims")
    label = "Salesforce (JWT bearer flow)"
    signing_key = PresetKey("RS256", "RSA PEM whose certificate is on the app.")
    lifetime = Lifetime(initial=150, cap=180)

    class Options(PresetOptions):
        consumer_key = forms.CharField(help_text="The connected app's consumer key.")
        username = forms.CharField(help_text="The user the app acts as (pre-authorized).")
        login_url = URLField(
            initial="https://login.salesforce.com",
            help_text="https://login.salesforce.com, https://test.salesforce.com for "
            "sandboxes, or an Experience Cloud site URL.",
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        login_url = options["login_url"].rstrip("/")
        claims = {"iss": options["consumer_key"], "sub": options["username"], "aud": login_url}
        return {"claims": claims, "token_url": f"{login_url}/services/oauth2/token"}
