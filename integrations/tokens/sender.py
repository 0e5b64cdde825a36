"""Sender-constrained tokens, the provider's side: DPoP proofs on token and resource
requests (RFC 9449), the options that turn them and discovery on, and the proof key's
place among the integration's secrets.

``DPoPBinding`` is one provider's DPoP state: its proof key (the ``dpop_key`` secret,
generated on save and stored encrypted, so every process proves the same key) and the
latest ``DPoP-Nonce`` of each origin. Every request gets a fresh proof: ``htm``, ``htu``
without query or fragment, ``iat``, a unique ``jti``, ``ath`` on resource requests and
the origin's nonce when it gave one; the ``jwk`` header holds public members only
(security.md #34). A ``use_dpop_nonce`` answer is retried once, never looped.

``TokenEndpointOptions`` declares once the options of the flows that may be
sender-constrained (token URL or issuer, scope, params, DPoP) and checks them.

The client certificate (``integrations.certificates``) and the DPoP key are secrets of
the integration, not options of an auth type: they survive a change of auth type, are
never exported, and never leave this process (TLS and proofs prove possession, nothing
sends the key), so changing where they are presented needs no re-entry.

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from django import forms

from ..certificates import CLIENT_CERTIFICATE
from ..exceptions import InvalidConfiguration
from .base import URLField, json_object_field
from .discovery import check_issuer
from .dpop import ALGORITHMS as DPOP_ALGORITHMS
from .dpop import DEFAULT_ALGORITHM, DPoPKey, NonceStore, wants_nonce_resource

if TYPE_CHECKING:
    import requests

# The secret holding the DPoP proof key (PKCS#8 PEM).
DPOP_KEY = "dpop_key"
# Secrets that belong to the integration whatever its auth type.
INTEGRATION_SECRETS = (CLIENT_CERTIFICATE, DPOP_KEY)
MISSING_KEY = (
    "no DPoP proof key is stored for this algorithm yet: save the integration (admin or "
    "import), or run integrations_discover, which generates one"
)


class DPoPBinding:
    """A provider's proof key and the servers' nonces (see the module docstring)."""

    __slots__ = ("key", "nonces")

    def __init__(self, key: DPoPKey) -> None:
        self.key = key
        self.nonces = NonceStore()

    def __repr__(self) -> str:
        return f"<DPoPBinding {self.key!r}>"

    def token_proof(self, url: str) -> str:
        """The proof for a token request (htm POST, htu the token URL)."""
        return self.key.proof("POST", url, nonce=self.nonces.get(url))

    def authorize(self, request: requests.PreparedRequest, token: str) -> None:
        """``Authorization: DPoP <token>`` and a fresh proof with ``ath`` and the
        origin's nonce (RFC 9449 §7.1). A DPoP token never goes out as Bearer."""
        url = request.url or ""
        request.headers["Authorization"] = "DPoP " + token
        request.headers["DPoP"] = self.key.proof(
            request.method or "GET", url, nonce=self.nonces.get(url), access_token=token
        )

    def observe(self, response: requests.Response) -> bool:
        """Keep the response's ``DPoP-Nonce``; True when it is a 401 asking for a proof
        with that nonce (RFC 9449 §9), which deserves one retry."""
        headers = response.headers
        if "DPoP-Nonce" not in headers:
            return False
        url = response.request.url or ""
        return (
            self.nonces.update(url, headers) is not None
            and wants_nonce_resource(response.status_code, headers)
        )


class KeyHolder(Protocol):
    """What ``ensure_dpop_key`` needs of an integration (``models.Integration``)."""

    @property
    def auth_config(self) -> Any: ...

    def get_secrets(self) -> dict[str, str]: ...
    def update_secrets(self, changes: dict[str, str | None]) -> None: ...


def stored_dpop_key(secrets: dict[str, str], algorithm: str) -> DPoPKey | None:
    """The stored proof key when it suits ``algorithm``, else None."""
    pem = secrets.get(DPOP_KEY)
    if not pem:
        return None
    try:
        return DPoPKey.from_pem(pem, algorithm)
    except InvalidConfiguration:
        return None


def ensure_dpop_key(integration: KeyHolder) -> DPoPKey | None:
    """With ``dpop`` on, the integration's proof key, generated (and put among its
    secrets, to be saved with it) when none suits ``dpop_algorithm``; None with ``dpop``
    off. A stored key is kept as long as it suits: tokens bound to it stay usable."""
    options = integration.auth_config or {}
    if not isinstance(options, dict) or not options.get("dpop"):
        return None
    algorithm = str(options.get("dpop_algorithm") or DEFAULT_ALGORITHM)
    if algorithm not in DPOP_ALGORITHMS:
        return None  # the Options form says why
    key = stored_dpop_key(integration.get_secrets(), algorithm)
    if key is None:
        key = DPoPKey.generate(algorithm)
        integration.update_secrets({DPOP_KEY: key.to_pem()})
    return key


# -- options shared by the flows that may be sender-constrained ----------------------


class TokenEndpointOptions(forms.Form):
    """The options of a flow that asks a token endpoint for a token it may bind to a
    DPoP key or the client certificate (jwt_grant, client_assertion,
    client_certificate), declared once, and their checks. A flow re-declares a field to
    change its help or whether it is required; ``fixed_params``: form fields the flow
    sets."""

    fixed_params: tuple[str, ...] = ("grant_type",)

    client_id = forms.CharField(help_text="The client's id at the authorization server.")
    token_url = URLField(
        required=False,
        help_text="The authorization server's token endpoint; discovered from the issuer "
        "when empty.",
    )
    issuer = forms.CharField(
        required=False,
        help_text="The authorization server's issuer URL. Its metadata (RFC 8414) is read "
        "on save: token_url may then stay empty, and the algorithms are checked.",
    )
    scope = forms.CharField(
        required=False, help_text="Sent as the scope parameter; space-separated."
    )
    params = json_object_field(
        'Extra form fields of the token request; a list sends the field once per item, '
        'e.g. {"resource": ["https://a.example/", "https://b.example/"]} (RFC 8707).'
    )
    dpop = forms.BooleanField(
        label="DPoP",
        required=False,
        initial=False,
        help_text="Sender-constrained tokens (RFC 9449): a proof key is generated on save "
        "and every request carries a proof of it.",
    )
    dpop_algorithm = forms.ChoiceField(
        label="DPoP algorithm",
        choices=[(name, name) for name in DPOP_ALGORITHMS],
        initial=DEFAULT_ALGORITHM,
        required=False,
        help_text="The proof key's algorithm; changing it generates a new key.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.require_endpoint(data)
        return data

    def clean_issuer(self) -> str:
        issuer = str(self.cleaned_data.get("issuer") or "")
        if issuer:
            try:
                check_issuer(issuer)
            except InvalidConfiguration as exc:
                raise forms.ValidationError(exc.message) from None
        return issuer

    def clean_dpop_algorithm(self) -> str:
        return str(self.cleaned_data.get("dpop_algorithm") or DEFAULT_ALGORITHM)

    def clean_params(self) -> dict[str, str | list[str]]:
        params = self.cleaned_data.get("params") or {}
        if not isinstance(params, dict) or not all(
            isinstance(value, str)
            or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
            for value in params.values()
        ):
            raise forms.ValidationError(
                "params must be a JSON object of strings or non-empty lists of strings"
            )
        fixed = sorted(set(params) & set(self.fixed_params))
        if fixed:
            raise forms.ValidationError(f"{', '.join(fixed)} are set by the app, not here")
        return params

    def require_endpoint(self, data: dict[str, Any]) -> None:
        """token_url, or an issuer whose metadata names the token endpoint."""
        if not data.get("token_url") and not data.get("issuer") and not self.has_error("issuer"):
            self.add_error("token_url", "Give the token URL, or the issuer to discover it from.")


def form_fields(params: dict[str, Any]) -> list[tuple[str, str]]:
    """``params`` as form fields: a list value gives the field once per item."""
    fields: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, list):
            fields.extend((name, str(item)) for item in value)
        else:
            fields.append((name, str(value)))
    return fields
