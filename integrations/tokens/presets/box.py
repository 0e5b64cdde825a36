"""``box``: Box Platform's JWT app auth (preset of ``jwt_grant``).

The operator pastes the app's JSON config as Box downloads it (client ID and secret,
public key ID, the passphrase-encrypted private key, enterprise ID). Box's rules:
RS256/384/512, kid = the public key ID, iss = client ID, sub = the enterprise or user
ID with ``box_sub_type``, aud ``https://api.box.com/oauth2/token``, a jti of 16-128
characters, exp at most 60 s ahead; the grant also carries client_id and client_secret.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import InvalidConfiguration
from ..base import FlowOptions, URLField, secret_field
from ..grant import GrantProvider
from ..preset import Lifetime, Preset, PresetOptions, pasted_json_object
from ..signing import load_signing_key

BOX_AUDIENCE = "https://api.box.com/oauth2/token"


# Where each value sits in Box's config (the JSON's own names, for messages).
CONFIG_FIELDS = {
    "client_id": ("boxAppSettings", "clientID"),
    "client_secret": ("boxAppSettings", "clientSecret"),
    "public_key_id": ("boxAppSettings", "appAuth", "publicKeyID"),
    "encrypted_key": ("boxAppSettings", "appAuth", "privateKey"),
}


@sensitive_variables("text", "data", "value", "found")
def config_values(text: str) -> dict[str, str]:
    """The strings Box's config holds, or ValidationError naming the missing or
    mistyped field (as ``boxAppSettings.appAuth.privateKey``), never a value."""
    data = pasted_json_object(text, "the Box config")
    found: dict[str, str] = {}
    for name, path in CONFIG_FIELDS.items():
        value: Any = data
        for depth, step in enumerate(path):
            if not isinstance(value, dict):
                where = ".".join(path[:depth])
                raise forms.ValidationError(f"the Box config's {where} is not a JSON object")
            if step not in value:
                raise forms.ValidationError(f"the Box config has no {'.'.join(path[: depth + 1])}")
            value = value[step]
        if not isinstance(value, str) or not value:
            raise forms.ValidationError(
                f"the Box config's {'.'.join(path)} must be a non-empty string"
            )
        found[name] = value
    passphrase = data["boxAppSettings"]["appAuth"].get("passphrase") or ""
    enterprise = data.get("enterpriseID") or ""
    for where, value in (
        ("boxAppSettings.appAuth.passphrase", passphrase),
        ("enterpriseID", enterprise),
    ):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise forms.ValidationError(f"the Box config's {where} must be a string")
    found["passphrase"] = str(passphrase)
    found["enterprise_id"] = str(enterprise)
    return found


@sensitive_variables("text", "found", "key")
def read_config(text: str) -> dict[str, str]:
    """Client ID and secret, public key ID, enterprise ID and the private key decrypted
    to PEM, from Box's JSON config; ValidationError naming what is wrong, never a value
    (security.md #37: a malformed config is a field error, never a crash)."""
    found = config_values(text)
    try:
        key = serialization.load_pem_private_key(
            found.pop("encrypted_key").encode(), password=found.pop("passphrase").encode() or None
        )
    except (ValueError, TypeError):
        raise forms.ValidationError(
            "the Box config's privateKey does not decrypt with its passphrase"
        ) from None
    except Exception:  # cryptography's UnsupportedAlgorithm for an odd key type
        raise forms.ValidationError(
            "the Box config's privateKey is of an unsupported type"
        ) from None
    found["private_key"] = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return found


class BoxProvider(Preset, GrantProvider):
    type = "box"
    account_options = ("subject_type", "subject_id", "claims")
    label = "Box (JWT app auth)"
    signing_key = None  # inside the config
    secret_fields = ("box_config",)
    lifetime = Lifetime(initial=45, cap=60)
    always_jti = True

    class Options(PresetOptions):
        box_config = secret_field("Box app config", "The app's JSON config file, pasted whole.")
        algorithm = forms.ChoiceField(
            choices=[(a, a) for a in ("RS256", "RS384", "RS512")], initial="RS256"
        )
        subject_type = forms.ChoiceField(
            choices=[("enterprise", "enterprise"), ("user", "user")], initial="enterprise"
        )
        subject_id = forms.CharField(
            required=False, help_text="Defaults to the config's enterpriseID."
        )
        token_url = URLField(required=False, initial=BOX_AUDIENCE)

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

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> FlowOptions:
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
            "clock_skew": self.clock_skew,
            "token_url": options.get("token_url") or BOX_AUDIENCE,
        }

    @sensitive_variables()
    def form(self, assertion: str) -> dict[str, str]:
        client_id, client_secret = self.client
        return {**super().form(assertion), "client_id": client_id, "client_secret": client_secret}
