"""``github_app``: a GitHub App acting as one installation (preset of ``jwt_exchange``).

GitHub's rules: RS256, iss = the app's client ID or app ID, iat backdated 60 s for
clock drift, exp at most 10 minutes ahead. The JWT is exchanged at
``POST {base_url}/app/installations/{installation_id}/access_tokens`` for
``{token, expires_at}`` (an hour), which then goes out as Bearer.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..base import FlowOptions
from ..exchange import ExchangeProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions


class GitHubAppProvider(Preset, ExchangeProvider):
    type = "github_app"
    label = "GitHub App installation"
    signing_key = PresetKey("RS256", "The app's PEM private key (RSA).")
    # GitHub refuses "'exp' is too far in the future" past now + 600; the default leaves
    # a minute for a host clock that runs fast.
    lifetime = Lifetime(initial=540, cap=600)
    clock_skew = 60
    delivery = (
        "sent as Bearer to POST {base_url}/app/installations/{installation_id}/access_tokens; "
        "the installation token is sent as Bearer"
    )

    class Options(PresetOptions):
        app_id = forms.CharField(help_text="The app's client ID (recommended) or numeric app ID.")
        installation_id = forms.RegexField(
            regex=r"^[0-9]+$", help_text="From the installation's settings URL."
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        path = f"/app/installations/{options['installation_id']}/access_tokens"
        return {
            "claims": {"iss": str(options["app_id"])},
            "exchange_url": self.base_url.rstrip("/") + path,
            "exchange_method": "POST",
            "token_field": "token",
            "expires_field": "expires_at",
        }
