"""``google_service_account``: a service account's JSON key file (preset of ``jwt_grant``).

Google's rules: RS256, kid = private_key_id, iss = client_email, aud = token_uri, the
scopes as one space-separated ``scope`` claim, optional sub for domain-wide delegation,
and exp at most an hour after iat. The grant goes to the key file's ``token_uri``.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import InvalidConfiguration
from ..base import PresetOptions, lifetime_field, secret_field
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


class GoogleServiceAccountOptions(PresetOptions):
    key_field = ""  # checked inside the key file
    max_lifetime = 3600
    cap_from_iat = True

    service_account = secret_field("Service account key file", "The JSON key file, pasted whole.")
    scopes = forms.JSONField(
        initial=list,
        help_text='e.g. ["https://www.googleapis.com/auth/cloud-platform"]',
    )
    subject = forms.CharField(
        required=False, help_text="A user to impersonate (domain-wide delegation)."
    )
    lifetime = lifetime_field(initial=3570, cap=3600)

    @sensitive_variables()
    def clean_service_account(self) -> str:
        text = self.cleaned_data.get("service_account") or ""
        if not text:
            raise forms.ValidationError("This secret is required.")
        parse_key_file(text)
        return text

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
        key_file = json.loads(options["service_account"])
        claims = {
            "iss": key_file["client_email"],
            "aud": key_file["token_uri"],
            "scope": " ".join(options["scopes"]),
        }
        if options.get("subject"):
            claims["sub"] = options["subject"]
        return {
            "algorithm": "RS256",
            "key": key_file["private_key"],
            "key_id": key_file["private_key_id"],
            "claims": claims,
            "lifetime": options["lifetime"],
            "clock_skew": GoogleServiceAccountOptions.clock_skew,
            "token_url": key_file["token_uri"],
        }
