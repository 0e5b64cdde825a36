"""``github_app``: a GitHub App acting as one installation (preset of ``jwt_exchange``).

GitHub's rules: RS256, iss = the app's client ID or app ID, iat backdated 60 s for
clock drift, exp at most 10 minutes ahead. The JWT is exchanged at
``POST {base_url}/app/installations/{installation_id}/access_tokens`` for
``{token, expires_at}`` (an hour), which then goes out as Bearer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from ...exceptions import TokenError
from ..base import FlowOptions, Token
from ..exchange import ExchangeProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions

if TYPE_CHECKING:
    import requests


class GitHubAppProvider(Preset, ExchangeProvider):
    type = "github_app"
    account_options = ("installation_id",)
    account_required = ("installation_id",)
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
        # Optional: an app serving many installations gives each account its own.
        installation_id = forms.RegexField(
            regex=r"^[0-9]+$",
            required=False,
            help_text="From the installation's settings URL; blank when each account has one.",
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        # Without an installation the provider still mints the app's own JWT (listing
        # installations); only an installation token needs one.
        self.installation_id = str(options.get("installation_id") or "")
        path = f"/app/installations/{self.installation_id}/access_tokens"
        return {
            "claims": {"iss": str(options["app_id"])},
            "exchange_url": self.base_url.rstrip("/") + path,
            "exchange_method": "POST",
            "token_field": "token",
            "expires_field": "expires_at",
        }

    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        if not self.installation_id:
            raise TokenError(
                f"{self.slug}: installation_id is required to call without an account "
                "(or give each account one)"
            )
        return super().obtain(http, request)
