"""``app_store_connect``: Apple's App Store Connect API (preset of ``jwt_bearer``).

Apple's rules: ES256 with a P-256 key, kid = the key ID, typ JWT, iss = the issuer ID,
aud ``appstoreconnect-v1``, and exp at most 20 minutes ahead.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ..base import PresetOptions, lifetime_field, secret_field
from ..bearer import BearerProvider
from ..registry import register
from .common import signing_options


class AppStoreConnectOptions(PresetOptions):
    key_algorithm = "ES256"
    max_lifetime = 1200

    issuer_id = forms.CharField(help_text="From Users and Access → Integrations.")
    key_id = forms.RegexField(
        regex=r"^[A-Za-z0-9]+$", help_text="The API key's ID (10 characters)."
    )
    private_key = secret_field("Private key", "The .p8 file's contents (EC P-256 PEM).")
    lifetime = lifetime_field(initial=1140, cap=max_lifetime)


@register
class AppStoreConnectProvider(BearerProvider):
    type = "app_store_connect"
    label = "App Store Connect API"
    Options = AppStoreConnectOptions
    secret_fields = ("private_key",)

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            **signing_options(AppStoreConnectOptions, options),
            "key_id": options["key_id"],
            "claims": {"iss": options["issuer_id"], "aud": "appstoreconnect-v1"},
        }
