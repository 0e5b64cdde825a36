"""``jwt_exchange``: the JWT as Bearer to an exchange URL that answers with a token
(reference.md: auth types). GitHub App installation tokens are the best-known case.

The token is read from ``token_field`` and its expiry from ``expires_field`` (ISO 8601
or epoch seconds), else ``expires_in``, else the token's own ``exp`` when it is a JWT.
Both field names may be dotted paths into nested JSON (``data.token``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .base import JWTOptions, OptionsForm, URLField
from .endpoint import TokenEndpointProvider

if TYPE_CHECKING:
    import requests


class ExchangeOptions(JWTOptions):
    exchange_url = URLField(help_text="Called with the JWT as Bearer; answers with a token.")
    exchange_method = forms.ChoiceField(
        choices=[("POST", "POST"), ("GET", "GET"), ("PUT", "PUT")], initial="POST"
    )
    token_field = forms.CharField(initial="token", help_text="Dotted path into the JSON answer.")
    expires_field = forms.CharField(
        initial="expires_at",
        required=False,
        help_text="ISO 8601 or epoch seconds; expires_in is used when it is absent.",
    )


class ExchangeProvider(TokenEndpointProvider):
    type = "jwt_exchange"
    label = "JWT exchange (JWT as Bearer to an exchange URL)"
    Options: ClassVar[OptionsForm] = ExchangeOptions
    endpoint_name = "exchange URL"
    delivery = "sent as Bearer to exchange_url; the token it answers with is sent as Bearer"

    def endpoint_url(self) -> str:
        return str(self.options["exchange_url"])

    def answer_fields(self) -> tuple[str, str]:
        return self.options.get("token_field") or "token", self.options.get("expires_field") or ""

    @sensitive_variables()
    def send(self, http: requests.Session, assertion: str) -> requests.Response:
        return http.request(
            self.options.get("exchange_method") or "POST",
            self.endpoint,
            headers={"Authorization": f"Bearer {assertion}", "Accept": "application/json"},
            timeout=self.timeout,
            allow_redirects=False,
        )
