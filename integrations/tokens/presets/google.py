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
from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import InvalidConfiguration
from ..base import PresetOptions, lifetime_field, secret_field
from ..bearer import BearerProvider
from ..grant import GrantProvider
from ..registry import register
from ..signing import load_signing_key

KEY_FILE_FIELDS = ("type", "client_email", "private_key", "private_key_id", "token_uri")


@sensitive_variables()
def parse_key_file(text: str) -> dict[str, Any]:
    """The key file's JSON, or ValidationError saying what is missing (never its content)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise forms.ValidationError("is not JSON: paste the whole key file") from None
    if not isinstance(data, dict):
        raise forms.ValidationError("is not a JSON object: paste the whole key file")
    missing = [
        name for name in KEY_FILE_FIELDS if not isinstance(data.get(name), str) or not data[name]
    ]
    if missing:
        raise forms.ValidationError(f"the key file has no {', '.join(missing)}")
    if data["type"] != "service_account":
        raise forms.ValidationError(f"is a {data['type']!r} key file, not a service_account one")
    from ...validation import check_url

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
    """The key file and Google's hour cap, shared by both ways of using it."""

    key_field = ""  # checked inside the key file
    max_lifetime = 3600
    cap_from_iat = True

    service_account = secret_field("Service account key file", "The JSON key file, pasted whole.")
    lifetime = lifetime_field(initial=3570, cap=max_lifetime)

    @sensitive_variables()
    def clean_service_account(self) -> str:
        text = self.cleaned_data.get("service_account") or ""
        if not text:
            raise forms.ValidationError("This secret is required.")
        parse_key_file(text)
        return text


@sensitive_variables()
def key_file_signing(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked key file in ``options`` and what both presets sign with from it: its
    RSA key and key ID, the lifetime and the iat backdating."""
    key_file = json.loads(options["service_account"])
    signing = {
        "algorithm": "RS256",
        "key": key_file["private_key"],
        "key_id": key_file["private_key_id"],
        "lifetime": options["lifetime"],
        "clock_skew": KeyFileOptions.clock_skew,
    }
    return key_file, signing


class GoogleServiceAccountOptions(KeyFileOptions):
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


@register
class GoogleServiceAccountProvider(GrantProvider):
    type = "google_service_account"
    label = "Google service account"
    Options = GoogleServiceAccountOptions
    secret_fields = ("service_account",)

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        key_file, signing = key_file_signing(options)
        claims = {
            "iss": key_file["client_email"],
            "aud": key_file["token_uri"],
            "scope": " ".join(options["scopes"]),
        }
        if options.get("subject"):
            claims["sub"] = options["subject"]
        return {**signing, "claims": claims, "token_url": key_file["token_uri"]}


class GoogleSelfSignedOptions(KeyFileOptions):
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


@register
class GoogleSelfSignedProvider(BearerProvider):
    """Google's self-signed JWT: many Google APIs accept a JWT signed by the service
    account directly, without the round trip to the token endpoint."""

    type = "google_self_signed_jwt"
    label = "Google service account, self-signed JWT"
    Options = GoogleSelfSignedOptions
    secret_fields = ("service_account",)

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        key_file, signing = key_file_signing(options)
        email = key_file["client_email"]
        claims = {"iss": email, "sub": email}
        if options.get("audience"):
            claims["aud"] = options["audience"]
        else:
            claims["scope"] = " ".join(options["scopes"])
        return {**signing, "claims": claims}
