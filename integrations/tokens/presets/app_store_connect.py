"""``app_store_connect``: Apple's App Store Connect API (preset of ``jwt_bearer``).

Apple's rules: ES256 with a P-256 key, kid = the key ID, typ JWT, iss = the issuer ID,
aud ``appstoreconnect-v1``, and exp at most 20 minutes ahead.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..base import FlowOptions
from ..bearer import BearerProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions


class AppStoreConnectProvider(Preset, BearerProvider):
    type = "app_store_connect"
    label = "App Store Connect API"
    signing_key = PresetKey("ES256", "The .p8 file's contents (EC P-256 PEM).")
    lifetime = Lifetime(initial=1140, cap=1200)

    class Options(PresetOptions):
        issuer_id = forms.CharField(help_text="From Users and Access → Integrations.")
        key_id = forms.RegexField(
            regex=r"^[A-Za-z0-9]+$", help_text="The API key's ID (10 characters)."
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        claims = {"iss": options["issuer_id"], "aud": "appstoreconnect-v1"}
        return {"key_id": options["key_id"], "claims": claims}
