"""The token provider base: what every auth type shares.

A provider turns an integration's auth options and secrets into a ``Token`` and puts
it on outgoing requests. Hooks, in the order they run:

- ``map_options(options)``: presets translate their own fields (``app_id``,
  ``service_account``) into the generic flow's options; generic flows keep them as is.
- ``claims(request)``: the claims of the next JWT (previews use it too).
- ``obtain(http, request)``: mint, or mint and trade at a token endpoint.
- ``authorize(request, token)``: put the token on the outgoing request.

Generic flows (``jwt_bearer``, ``jwt_grant``, ``client_assertion``, ``jwt_exchange``)
override ``obtain``; presets (``preset.Preset``) are small declarations over a flow.

Providers know nothing of models, HTTP sessions or the call log: the integration is
duck-typed (``IntegrationLike``) and token endpoints get a session passed in.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict, cast

from django import forms
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration
from ..settings import app_settings
from ..urlpaths import check_url
from .custody import PIN_FIELD, SIGNER_FIELD, key_signer, owner_of, signer_problems
from .jws import JWTSigner
from .signing import ALGORITHMS, load_signing_key, standard_claims

if TYPE_CHECKING:
    import requests


# Named outside the classes: inside them, ``type`` is the auth type's name.
OptionsForm = type[forms.Form]
# The longest token a generic flow mints, in seconds: a user who may edit an integration
# must not be able to have the organisation's key sign a token for years (security.md
# #30). Presets keep their provider's lower caps.
MAX_LIFETIME = 3600


class IntegrationLike(Protocol):
    """What a provider reads of an integration (``models.Integration`` has it all)."""

    @property
    def slug(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def auth_fingerprint(self) -> str: ...
    @property
    def auth_type(self) -> str: ...
    @property
    def auth_config(self) -> Any: ...
    @property
    def test_request(self) -> Any: ...
    # The CA bundle the session passed to ``obtain`` trusts for the token endpoint.
    @property
    def ca_bundle(self) -> str: ...

    def get_secrets(self) -> dict[str, str]: ...


class FlowOptions(TypedDict, total=False):
    """A generic flow's options after ``map_options``: what ``self.options`` holds."""

    algorithm: str
    key: str
    key_id: str
    # key custody (tokens/custody.py): a device instead of ``key``, its PIN, kid in header
    signer: dict[str, Any]
    signer_pin: str
    send_kid: bool
    claims: dict[str, Any]
    lifetime: int
    clock_skew: int
    # jwt_bearer
    header_name: str
    scheme: str
    # jwt_grant, client_assertion, client_certificate
    token_url: str
    scope: str
    params: dict[str, str | list[str]]
    client_id: str
    # sender-constrained tokens and discovery (tokens/sender.py)
    issuer: str
    dpop: bool
    dpop_algorithm: str
    # client_assertion
    audience: str
    # jwt_grant's optional client authentication
    client_secret: str
    client_assertion: bool
    # jwt_exchange
    exchange_url: str
    exchange_method: str
    token_field: str
    expires_field: str


@dataclass(frozen=True)
class Token:
    """A credential and when it stops working. ``value`` never appears in repr."""

    value: str = field(repr=False)
    expires_at: float
    kid: str = ""
    jti: str = ""
    obtained_at: float = field(default_factory=time.time)

    def fresh(self, margin: float, now: float | None = None) -> bool:
        """True until ``margin`` seconds before expiry.

        The margin shrinks to half the token's life for short-lived tokens, so a token
        living less than the margin is still reused for a while instead of never.
        """
        margin = min(margin, max(self.expires_at - self.obtained_at, 0) / 2)
        return (now if now is not None else time.time()) < self.expires_at - margin


def secret_field(label: str, help_text: str = "") -> forms.CharField:
    """A secret option: never rendered back, blank keeps the stored value."""
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text=help_text,
    )


def json_object_field(help_text: str) -> forms.JSONField:
    """An optional option holding a JSON object, {} when not given."""
    return forms.JSONField(required=False, initial=dict, help_text=help_text)


class URLField(forms.CharField):
    """An endpoint URL, checked like ``base_url``: http/https, a host, no userinfo."""

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if value:
            try:
                check_url(value, "url")
            except InvalidConfiguration as exc:
                raise forms.ValidationError(exc.message) from None
        return value


def signer_field() -> forms.JSONField:
    """The ``signer`` option: a device that holds the key instead of ``key``."""
    return forms.JSONField(
        required=False,
        help_text='Instead of a stored key: {"type": "pkcs11", "module": "/usr/lib/softhsm/'
        'libsofthsm2.so", "token_label": "...", "key_label": "..."} or {"type": "aws_kms", '
        '"key_id": "arn:...", "region": "eu-west-1"}. The private key never leaves it.',
    )


class Flag(forms.BooleanField):
    """A checkbox option that is absent (None) unless ticked: an unticked one is not
    stored, so saving a form leaves the options as they were."""

    def clean(self, value: Any) -> bool | None:
        return True if super().clean(value) else None


def send_kid_field() -> forms.BooleanField:
    return Flag(
        required=False,
        help_text="Send the key's id (key_id, else its RFC 7638 thumbprint) as the JOSE kid: "
        "needed once the server holds several keys (rollover).",
    )


@sensitive_variables()
def check_key(
    form: forms.Form, data: dict[str, Any], algorithm: str | None, key_field: str
) -> None:
    """Add a form error on ``key_field`` unless its key suits ``algorithm`` (security.md #2-3);
    with a ``signer`` configured, check that instead: it replaces the key."""
    config = data.get(SIGNER_FIELD)
    if config not in (None, "", {}):
        for name, message in signer_problems(config, algorithm, data.get(PIN_FIELD) or ""):
            form.add_error(name, message)
        if data.get(key_field):
            form.add_error(
                key_field, "a signer holds the key: leave this empty, or remove the signer"
            )
        return
    if data.get(PIN_FIELD):
        form.add_error(PIN_FIELD, "a PIN is for a signer: configure one or leave this empty")
    material = data.get(key_field)
    if not material:
        form.add_error(key_field, "This secret is required.")
        return
    if algorithm:
        try:
            load_signing_key(algorithm, material)
        except InvalidConfiguration as exc:
            form.add_error(key_field, exc.message)


class JWTOptions(forms.Form):
    """Options every JWT-minting flow shares; flows add theirs."""

    algorithm = forms.ChoiceField(choices=[(a, a) for a in ALGORITHMS], initial="RS256")
    key = secret_field("Signing key", "PEM private key, or the shared secret for HS256/384/512.")
    signer = signer_field()
    signer_pin = secret_field("Signer PIN", "The PKCS#11 token's user PIN (pkcs11 signers).")
    key_id = forms.CharField(required=False, help_text="Sent as the JOSE kid header.")
    send_kid = send_kid_field()
    claims = json_object_field(
        'Copied into every token, e.g. {"iss": "shop", "aud": "billing"}; '
        '"nbf": true and "jti": true add those claims.'
    )
    lifetime = forms.IntegerField(
        min_value=1,
        max_value=MAX_LIFETIME,
        initial=300,
        help_text=f"Seconds; at most {MAX_LIFETIME}.",
    )
    clock_skew = forms.IntegerField(
        min_value=0,
        max_value=300,
        initial=30,
        required=False,
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

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clock_skew") is None:
            data["clock_skew"] = 30
        check_key(self, data, data.get("algorithm"), "key")
        return data


class TokenProvider:
    """Base of every auth type. ``options`` are cleaned ``Options`` data, secrets included,
    mapped by ``map_options`` onto the generic flow's options."""

    label: ClassVar[str]
    Options: ClassVar[OptionsForm]
    type: ClassVar[str]
    secret_fields: ClassVar[tuple[str, ...]] = ("key",)
    # The secret option a generated key pair fills (the admin's "Generate key pair"),
    # None when the type's key cannot be generated (a shared secret, a key file).
    generated_key_field: ClassVar[str | None] = None
    # The one algorithm a preset's key must suit; None: the ``algorithm`` option says.
    key_algorithm: ClassVar[str | None] = None
    # True for the presets of specific providers, False for the generic flows.
    is_preset: ClassVar[bool] = False
    # False for flows that need a new token per request (e.g. a claim over the URL).
    cacheable: ClassVar[bool] = True
    # The options an account may override (docs/reference.md, Accounts): form fields of
    # ``Options``, or "claims", merged over the token's claims after ``map_options``.
    account_options: ClassVar[tuple[str, ...]] = ()
    # Of those, the ones every account must end up with (its own or the integration's).
    account_required: ClassVar[tuple[str, ...]] = ()

    @sensitive_variables()
    def __init__(self, integration: IntegrationLike, options: dict[str, Any]) -> None:
        self.integration = integration
        self.slug = integration.slug
        self.base_url = integration.base_url
        # Token endpoints get the integration's bounds (security.md #15).
        self.timeout = (float(app_settings.CONNECT_TIMEOUT), float(integration.timeout or 10.0))
        self.options = self.map_options(options)
        self.cache_key = f"integrations:token:{integration.slug}:{integration.auth_fingerprint}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.slug!r}>"

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> FlowOptions:
        """The generic flow's options from this type's own (presets override this)."""
        return cast(FlowOptions, options)  # cleaned by the flow's own Options form

    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        """Mint or fetch a new token. ``request`` is given only when not ``cacheable``."""
        raise NotImplementedError

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"

    @property
    def credential_headers(self) -> tuple[str, ...]:
        """Headers that carry credentials: dropped when a redirect changes host."""
        return ("Authorization",)

    def preview(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        """What the next credential will look like, without signature or secret."""
        raise NotImplementedError


class JWTProvider(TokenProvider):
    """A provider that signs JWTs: builds one ``Signer`` and the standard claims."""

    Options: ClassVar[OptionsForm] = JWTOptions
    secret_fields: ClassVar[tuple[str, ...]] = ("key", PIN_FIELD)
    generated_key_field: ClassVar[str | None] = "key"
    always_jti: ClassVar[bool] = False
    # An account may give its own claims, unless the flow fixes them (client_assertion).
    account_options: ClassVar[tuple[str, ...]] = ("claims",)
    # How the JWT travels, for previews: "sent as ...".
    delivery: ClassVar[str] = ""

    @sensitive_variables()
    def __init__(self, integration: IntegrationLike, options: dict[str, Any]) -> None:
        super().__init__(integration, options)
        self.signer = self.build_signer()
        self._last_minted = b""

    @sensitive_variables()
    def build_signer(self) -> JWTSigner:
        """The key's signer, from the process's cache (tokens/custody.py): the stored
        key, or the configured device."""
        options = self.options
        algorithm = options["algorithm"]
        key_id = options.get("key_id") or ""
        custody = key_signer(
            owner_of(self.integration),
            algorithm,
            material=options.get("key") or "",
            config=options.get("signer") or None,
            pin=options.get("signer_pin") or "",
            kid=key_id,
        )
        return JWTSigner(
            algorithm, key_id=key_id, send_kid=bool(options.get("send_kid")), custody=custody
        )

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        """The claims of the next JWT (no signature): used for minting and previews."""
        return standard_claims(
            self.options.get("claims") or {},
            lifetime=self.options["lifetime"],
            clock_skew=self.options.get("clock_skew") or 0,
            jti=self.always_jti,
        )

    @sensitive_variables()
    def mint(self, request: requests.PreparedRequest | None = None) -> tuple[str, dict[str, Any]]:
        """A signed JWT and its claims; never the same bytes twice in a row."""
        claims = self.claims(request)
        token = self.signer.sign(claims)
        digest = hashlib.sha256(token.encode()).digest()
        if digest == self._last_minted:
            # Same claims in the same second sign to the same bytes, and a token that
            # replaces a refused one must differ from it (reference.md): a jti makes it unique.
            claims["jti"] = str(uuid.uuid4())
            token = self.signer.sign(claims)
            digest = hashlib.sha256(token.encode()).digest()
        self._last_minted = digest
        return token, claims

    def preview(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        header = {"alg": self.signer.algorithm, **self.signer.headers}
        return {
            "auth_type": self.type,
            "header": header,
            "claims": self.claims(request),
            "delivery": self.delivery,
        }
