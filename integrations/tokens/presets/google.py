"""Google service accounts from their JSON key file.

``google_service_account`` (preset of ``jwt_grant``): RS256, kid = private_key_id, iss
= client_email, aud = token_uri, the scopes as one space-separated ``scope`` claim,
optional sub for domain-wide delegation, exp at most an hour after iat; the grant goes
to the key file's ``token_uri``.

``google_self_signed_jwt`` (preset of ``jwt_bearer``): the same key signs a JWT that is
sent as Bearer directly, iss = sub = client_email with aud = the API's service URL (or
a ``scope`` claim), exp at most an hour after iat.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import InvalidConfiguration
from ...urlpaths import check_url
from ..base import FlowOptions, secret_field
from ..bearer import BearerProvider
from ..grant import GrantProvider
from ..preset import Lifetime, Preset, PresetOptions, pasted_json_object
from ..signing import load_signing_key

KEY_FILE_FIELDS = ("type", "client_email", "private_key", "private_key_id", "token_uri")


@sensitive_variables()
def parse_key_file(text: str) -> dict[str, Any]:
    """The key file's JSON, or ValidationError saying what is missing (never its content)."""
    data = pasted_json_object(text, "the key file")
    missing = [
        name for name in KEY_FILE_FIELDS if not isinstance(data.get(name), str) or not data[name]
    ]
    if missing:
        raise forms.ValidationError(f"the key file has no {', '.join(missing)}")
    if data["type"] != "service_account":
        raise forms.ValidationError(f"is a {data['type']!r} key file, not a service_account one")
    try:
        check_url(data["token_uri"], "token_uri")
        load_signing_key("RS256", data["private_key"])
    except InvalidConfiguration as exc:
        raise forms.ValidationError(f"{exc.field}: {exc.message}") from None
    return data


def parse_scopes(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list) and all(isinstance(scope, str) for scope in value):
        return [scope for scope in value if scope]
    raise forms.ValidationError("scopes must be a list of strings (or one space-separated string)")


class KeyFileOptions(PresetOptions):
    """The key file, shared by both ways of using it; its key is checked inside it."""

    service_account = secret_field("Service account key file", "The JSON key file, pasted whole.")

    @sensitive_variables()
    def clean_service_account(self) -> str:
        text = self.cleaned_data.get("service_account") or ""
        if not text:
            raise forms.ValidationError("This secret is required.")
        parse_key_file(text)
        return text


class KeyFilePreset(Preset):
    """What both Google presets sign with from the checked key file: its RSA key and
    key ID, under Google's hour from iat."""

    signing_key = None
    secret_fields: ClassVar[tuple[str, ...]] = ("service_account",)
    lifetime = Lifetime(initial=3570, cap=3600, from_iat=True)
    Options = KeyFileOptions

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> FlowOptions:
        key_file = json.loads(options["service_account"])
        signing: FlowOptions = {
            "algorithm": "RS256",
            "key": key_file["private_key"],
            "key_id": key_file["private_key_id"],
            "lifetime": options["lifetime"],
            "clock_skew": self.clock_skew,
        }
        plain = {name: value for name, value in options.items() if name != "service_account"}
        return {**signing, **self.key_file_options(key_file["client_email"], key_file, plain)}

    def key_file_options(
        self, email: str, key_file: dict[str, Any], options: dict[str, Any]
    ) -> FlowOptions:
        """The flow's claims and URLs from the key file's public fields and the plain
        options (``key_file`` holds the key too: read only what is named here)."""
        raise NotImplementedError


class GoogleServiceAccountProvider(KeyFilePreset, GrantProvider):
    type = "google_service_account"
    account_options = ("subject", "scopes")
    label = "Google service account"

    class Options(KeyFileOptions):
        field_order = ["service_account", "scopes", "subject", "lifetime"]

        scopes = forms.JSONField(
            initial=list,
            help_text='e.g. ["https://www.googleapis.com/auth/cloud-platform"]',
        )
        subject = forms.CharField(
            required=False, help_text="A user to impersonate (domain-wide delegation)."
        )

        def clean_scopes(self) -> list[str]:
            scopes = parse_scopes(self.cleaned_data.get("scopes"))
            if not scopes:
                raise forms.ValidationError("name at least one scope")
            return scopes

    def key_file_options(
        self, email: str, key_file: dict[str, Any], options: dict[str, Any]
    ) -> FlowOptions:
        token_uri = key_file["token_uri"]
        claims = {"iss": email, "aud": token_uri, "scope": " ".join(options["scopes"])}
        if options.get("subject"):
            claims["sub"] = options["subject"]
        return {"claims": claims, "token_url": token_uri}


class GoogleSelfSignedProvider(KeyFilePreset, BearerProvider):
    """Google's self-signed JWT: many Google APIs accept a JWT signed by the service
    account directly, without the round trip to the token endpoint."""

    type = "google_self_signed_jwt"
    label = "Google service account, self-signed JWT"

    class Options(KeyFileOptions):
        field_order = ["service_account", "audience", "scopes", "lifetime"]

        audience = forms.CharField(
            required=False,
            help_text="The API's service URL with a trailing slash, e.g. "
            "https://pubsub.googleapis.com/; or leave empty and give scopes.",
        )
        scopes = forms.JSONField(required=False, initial=list)

        @sensitive_variables()
        def clean(self) -> dict[str, Any]:
            data = super().clean()
            try:
                data["scopes"] = parse_scopes(data.get("scopes") or [])
            except forms.ValidationError as exc:
                self.add_error("scopes", exc)
                return data
            if bool(data.get("audience")) == bool(data["scopes"]):
                self.add_error("audience", "give either an audience or scopes, not both or neither")
            return data

    def key_file_options(
        self, email: str, key_file: dict[str, Any], options: dict[str, Any]
    ) -> FlowOptions:
        claims = {"iss": email, "sub": email}
        if options.get("audience"):
            claims["aud"] = options["audience"]
        else:
            claims["scope"] = " ".join(options["scopes"])
        return {"claims": claims}
