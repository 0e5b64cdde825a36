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
from django.views.decorators.debug import sensitive_variables

from ..base import PresetOptions, URLField, lifetime_field, secret_field
from ..grant import GrantProvider
from ..registry import register
from .common import signing_options


class SalesforceOptions(PresetOptions):
    max_lifetime = 180

    consumer_key = forms.CharField(help_text="The connected app's consumer key.")
    username = forms.CharField(help_text="The user the app acts as (pre-authorized).")
    login_url = URLField(
        initial="https://login.salesforce.com",
        help_text="https://login.salesforce.com, https://test.salesforce.com for "
        "sandboxes, or an Experience Cloud site URL.",
    )
    private_key = secret_field("Private key", "RSA PEM whose certificate is on the app.")
    lifetime = lifetime_field(initial=150, cap=max_lifetime)


@register
class SalesforceProvider(GrantProvider):
    type = "salesforce"
    label = "Salesforce (JWT bearer flow)"
    Options = SalesforceOptions
    secret_fields = ("private_key",)

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        login_url = options["login_url"].rstrip("/")
        return {
            **signing_options(SalesforceOptions, options),
            "claims": {
                "iss": options["consumer_key"],
                "sub": options["username"],
                "aud": login_url,
            },
            "token_url": f"{login_url}/services/oauth2/token",
        }
