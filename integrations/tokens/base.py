"""The token provider base: what every auth type shares.

A provider turns an integration's auth options and secrets into a ``Token`` and puts
it on outgoing requests. Subclasses override ``obtain`` (and, rarely, ``authorize``);
presets are thin subclasses that map their provider's fields onto a generic flow and
declare its published rules in their ``Options`` form.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms

from .signing import ALGORITHMS, Signer, load_signing_key, standard_claims
from ..exceptions import InvalidConfiguration

if TYPE_CHECKING:
    import requests

    from ..models import Integration


@dataclass(frozen=True)
class Token:
    """A credential and when it stops working. ``value`` never appears in repr."""

    value: str = field(repr=False)
    expires_at: float
    kid: str = ""
    jti: str = ""

    def fresh(self, margin: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires_at - margin


class SecretInput(forms.PasswordInput):
    """Write-only: never renders the stored value (SECURITY 29)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, render_value=False)


def secret_field(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text=help_text,
    )


class JWTOptions(forms.Form):
    """Options every JWT-minting flow shares. Subclasses add theirs and set the caps."""

    max_lifetime: ClassVar[int | None] = None

    algorithm = forms.ChoiceField(choices=[(a, a) for a in ALGORITHMS], initial="RS256")
    key = secret_field(
        "Signing key", "PEM private key, or the shared secret for HS256/384/512."
    )
    key_id = forms.CharField(required=False, help_text="Sent as the JOSE kid header.")
    claims = forms.JSONField(
        required=False,
        initial=dict,
        help_text='Copied into every token, e.g. {"iss": "shop", "aud": "billing"}; '
        '"nbf": true and "jti": true add those claims.',
    )
    lifetime = forms.IntegerField(min_value=1, initial=300, help_text="Seconds.")
    clock_skew = forms.IntegerField(
        min_value=0, max_value=300, initial=30, required=False,
        help_text="Seconds iat is backdated, for servers whose clock runs behind.",
    )

    def clean_claims(self) -> dict[str, Any]:
        claims = self.cleaned_data.get("claims") or {}
        if not isinstance(claims, dict):
            raise forms.ValidationError("claims must be a JSON object")
        reserved = sorted({"iat", "exp"} & set(claims))
        if reserved:
            raise forms.ValidationError(f"{', '.join(reserved)} are set by the app, not here")
        return claims

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clock_skew") is None:
            data["clock_skew"] = 30
        self.check_key(data, "algorithm", "key")
        self.check_lifetime(data)
        return data

    def check_key(self, data: dict[str, Any], algorithm_field: str, key_field: str) -> None:
        algorithm, material = data.get(algorithm_field), data.get(key_field)
        if not material:
            self.add_error(key_field, "This secret is required.")
            return
        if algorithm:
            try:
                load_signing_key(algorithm, material)
            except InvalidConfiguration as exc:
                self.add_error(key_field, exc.message)

    def check_lifetime(self, data: dict[str, Any]) -> None:
        lifetime = data.get("lifetime")
        if self.max_lifetime and lifetime and lifetime > self.max_lifetime:
            self.add_error(
                "lifetime",
                f"at most {self.max_lifetime} seconds for this provider; got {lifetime}",
            )


class TokenProvider:
    """Base of every auth type. ``options`` are cleaned ``Options`` data, secrets included."""

    type: ClassVar[str]
    label: ClassVar[str]
    Options: ClassVar[type[forms.Form]]
    secret_fields: ClassVar[tuple[str, ...]] = ("key",)
    # False for flows that need a new token per request (e.g. a claim over the URL).
    cacheable: ClassVar[bool] = True

    def __init__(self, integration: Integration, options: dict[str, Any]) -> None:
        self.integration = integration
        self.slug = integration.slug
        self.base_url = integration.base_url
        self.options = options
        self.cache_key = f"integrations:token:{integration.slug}:{integration.auth_fingerprint}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.slug!r}>"

    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        """Mint or fetch a new token. ``request`` is given only when not ``cacheable``."""
        raise NotImplementedError

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"

    @property
    def credential_headers(self) -> tuple[str, ...]:
        """Headers that carry credentials: dropped when a redirect changes host."""
        return ("Authorization",)


class JWTProvider(TokenProvider):
    """A provider that signs JWTs: builds one ``Signer`` and the standard claims."""

    Options = JWTOptions
    always_jti: ClassVar[bool] = False

    def __init__(self, integration: Integration, options: dict[str, Any]) -> None:
        super().__init__(integration, options)
        self.signer = self.build_signer()

    def build_signer(self) -> Signer:
        return Signer(
            self.options["algorithm"], self.options["key"], key_id=self.options.get("key_id") or ""
        )

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        """The claims of the next JWT (no signature): used for minting and previews."""
        return standard_claims(
            self.options.get("claims") or {},
            lifetime=self.options["lifetime"],
            clock_skew=self.options.get("clock_skew") or 0,
            jti=self.always_jti,
        )

    def mint(self, request: requests.PreparedRequest | None = None) -> tuple[str, dict[str, Any]]:
        claims = self.claims(request)
        return self.signer.sign(claims), claims
