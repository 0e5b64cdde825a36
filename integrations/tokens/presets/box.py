"""``box``: Box Platform's JWT app auth (preset of ``jwt_grant``).

The operator pastes the app's JSON config as Box downloads it (client ID and secret,
public key ID, the passphrase-encrypted private key, enterprise ID). Box's rules:
RS256/384/512, kid = the public key ID, iss = client ID, sub = the enterprise or user
ID with ``box_sub_type``, aud ``https://api.box.com/oauth2/token``, a jti of 16-128
characters, exp at most 60 s ahead; the grant also carries client_id and client_secret.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import InvalidConfiguration
from ..base import PresetOptions, URLField, lifetime_field, secret_field
from ..grant import GrantProvider
from ..registry import register
from ..signing import load_signing_key

BOX_AUDIENCE = "https://api.box.com/oauth2/token"


@sensitive_variables("text", "data", "settings", "auth", "key", "passphrase")
def read_config(text: str) -> dict[str, str]:
    """Client ID and secret, public key ID, enterprise ID and the private key decrypted
    to PEM, from Box's JSON config; ValidationError naming what is wrong, never a value."""
    try:
        data = json.loads(text)
        settings = data["boxAppSettings"]
        auth = settings["appAuth"]
        found = {
            "client_id": settings["clientID"],
            "client_secret": settings["clientSecret"],
            "public_key_id": auth["publicKeyID"],
            "encrypted_key": auth["privateKey"],
            "passphrase": auth.get("passphrase") or "",
            "enterprise_id": str(data.get("enterpriseID") or ""),
        }
    except (ValueError, TypeError, KeyError) as exc:
        what = f"has no {exc.args[0]}" if isinstance(exc, KeyError) else "is not Box's JSON config"
        raise forms.ValidationError(f"the Box config {what}") from None
    try:
        key = serialization.load_pem_private_key(
            found.pop("encrypted_key").encode(), password=found.pop("passphrase").encode() or None
        )
    except (ValueError, TypeError):
        raise forms.ValidationError(
            "the Box config's privateKey does not decrypt with its passphrase"
        ) from None
    found["private_key"] = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return found


class BoxOptions(PresetOptions):
    key_field = ""  # inside the config
    max_lifetime = 60

    box_config = secret_field("Box app config", "The app's JSON config file, pasted whole.")
    algorithm = forms.ChoiceField(
        choices=[(a, a) for a in ("RS256", "RS384", "RS512")], initial="RS256"
    )
    subject_type = forms.ChoiceField(
        choices=[("enterprise", "enterprise"), ("user", "user")], initial="enterprise"
    )
    subject_id = forms.CharField(required=False, help_text="Defaults to the config's enterpriseID.")
    token_url = URLField(required=False, initial=BOX_AUDIENCE)
    lifetime = lifetime_field(initial=45, cap=max_lifetime)

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        data = super().clean()
        text = data.get("box_config")
        if not text:
            self.add_error("box_config", "This secret is required.")
            return data
        try:
            config = read_config(text)
        except forms.ValidationError as exc:
            self.add_error("box_config", exc)
            return data
        try:
            load_signing_key(data.get("algorithm") or "RS256", config["private_key"])
        except InvalidConfiguration as exc:
            self.add_error("box_config", f"privateKey: {exc.message}")
        if not (data.get("subject_id") or config["enterprise_id"]):
            self.add_error("subject_id", "required: the config has no enterpriseID")
        return data


@register
class BoxProvider(GrantProvider):
    type = "box"
    label = "Box (JWT app auth)"
    Options = BoxOptions
    secret_fields = ("box_config",)
    always_jti = True

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        config = read_config(options["box_config"])
        self.client = (config["client_id"], config["client_secret"])
        return {
            "algorithm": options.get("algorithm") or "RS256",
            "key": config["private_key"],
            "key_id": config["public_key_id"],
            "claims": {
                "iss": config["client_id"],
                "sub": options.get("subject_id") or config["enterprise_id"],
                "box_sub_type": options.get("subject_type") or "enterprise",
                "aud": BOX_AUDIENCE,
            },
            "lifetime": options["lifetime"],
            "clock_skew": BoxOptions.clock_skew,
            "token_url": options.get("token_url") or BOX_AUDIENCE,
        }

    @sensitive_variables()
    def form(self, assertion: str) -> dict[str, str]:
        client_id, client_secret = self.client
        return {**super().form(assertion), "client_id": client_id, "client_secret": client_secret}
