"""``github_app``: a GitHub App acting as one installation (preset of ``jwt_exchange``).

GitHub's rules: RS256, iss = the app's client ID or app ID, iat backdated 60 s for
clock drift, exp at most 10 minutes ahead. The JWT is exchanged at
``POST {base_url}/app/installations/{installation_id}/access_tokens`` for
``{token, expires_at}`` (an hour), which then goes out as Bearer.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ..base import PresetOptions, lifetime_field, secret_field
from ..exchange import ExchangeProvider
from ..registry import register
from .common import signing_options


class GitHubAppOptions(PresetOptions):
    clock_skew = 60
    # GitHub refuses "'exp' is too far in the future" past now + 600; the default leaves
    # a minute for a host clock that runs fast.
    max_lifetime = 600

    app_id = forms.CharField(help_text="The app's client ID (recommended) or numeric app ID.")
    installation_id = forms.RegexField(
        regex=r"^[0-9]+$", help_text="From the installation's settings URL."
    )
    private_key = secret_field("Private key", "The app's PEM private key (RSA).")
    lifetime = lifetime_field(initial=540, cap=max_lifetime)


@register
class GitHubAppProvider(ExchangeProvider):
    type = "github_app"
    label = "GitHub App installation"
    Options = GitHubAppOptions
    secret_fields = ("private_key",)
    delivery = (
        "sent as Bearer to POST {base_url}/app/installations/{installation_id}/access_tokens; "
        "the installation token is sent as Bearer"
    )

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            **signing_options(GitHubAppOptions, options),
            "claims": {"iss": str(options["app_id"])},
            "exchange_url": self.base_url.rstrip("/")
            + f"/app/installations/{options['installation_id']}/access_tokens",
            "exchange_method": "POST",
            "token_field": "token",
            "expires_field": "expires_at",
        }
