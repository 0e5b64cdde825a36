"""``snowflake``: Snowflake key-pair authentication for the SQL API (preset of
``jwt_bearer``).

Snowflake's rules: RS256, iss = ``ACCOUNT.USER.SHA256:<fingerprint>`` where the
fingerprint is the base64 SHA-256 of the public key (DER) and ACCOUNT and USER are upper
case (an account locator without its region), sub = ``ACCOUNT.USER``, exp at most an
hour after iat, and the header ``X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from django import forms
from django.views.decorators.debug import sensitive_variables

from ...signers.base import PublicKey
from ..base import FlowOptions, Token
from ..bearer import BearerProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions
from ..signing import load_signing_key

if TYPE_CHECKING:
    import requests

TOKEN_TYPE_HEADER = "X-Snowflake-Authorization-Token-Type"


def qualified_names(account: str, user: str) -> tuple[str, str]:
    """ACCOUNT and USER as Snowflake puts them in the JWT."""
    # A locator like "xy12345.us-east-2.aws" loses its region; org-account names
    # ("myorg-myaccount") stay whole.
    return account.split(".")[0].upper(), user.upper()


@sensitive_variables()
def public_key_fingerprint(private_pem: str) -> str:
    """``SHA256:`` + base64 of the SHA-256 of the public key's DER, as Snowflake shows it
    in DESC USER's RSA_PUBLIC_KEY_FP."""
    key = load_signing_key("RS256", private_pem)
    assert not isinstance(key, bytes)
    return der_fingerprint(key.public_key())


def der_fingerprint(public: PublicKey) -> str:
    """Snowflake's fingerprint of a public key (held locally or read from a device)."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


class SnowflakeProvider(Preset, BearerProvider):
    type = "snowflake"
    label = "Snowflake key pair"
    signing_key = PresetKey("RS256", "RSA PEM (unencrypted).")
    lifetime = Lifetime(initial=3540, cap=3600, from_iat=True)

    class Options(PresetOptions):
        account = forms.CharField(help_text="Account identifier, e.g. myorg-myaccount or xy12345.")
        user = forms.CharField(help_text="The user whose RSA_PUBLIC_KEY holds the public key.")

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        claims = super().claims(request)
        # iss names the key: ACCOUNT.USER.SHA256:<fingerprint of its public half>, read
        # from the signer, so a key in an HSM or KMS works too (and a promoted one).
        if not getattr(self, "_fingerprint", ""):
            self._fingerprint = der_fingerprint(self.signer.custody.public_key())
        claims["iss"] = f"{claims['iss']}.{self._fingerprint}"
        return claims

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        account, user = qualified_names(options["account"], options["user"])
        return {"claims": {"iss": f"{account}.{user}", "sub": f"{account}.{user}"}}

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"
        request.headers[TOKEN_TYPE_HEADER] = "KEYPAIR_JWT"
