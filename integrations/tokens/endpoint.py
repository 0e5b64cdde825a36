"""Token endpoints: the one place a credential is traded for an access token.

``TokenEndpoint`` is the base of the flows that call one (``jwt_grant``,
``client_assertion``, ``jwt_exchange`` and their presets, which mint an assertion:
``TokenEndpointProvider``; ``client_certificate``, which proves its TLS certificate
alone). It sends the request through the session it is given (the app's: address
guard, deadline, size cap, the client certificate when there is one) with the
integration's timeouts and no redirects, and turns the answer into a ``Token``, or a
refusal into a ``TokenEndpointError`` carrying OAuth's ``error`` and
``error_description``.

Sender-constrained tokens (docs/reference.md, Sender-constrained tokens and discovery):
the token URL is ``token_url`` or, when only ``issuer`` is set, the discovered
``token_endpoint`` (its ``mtls_endpoint_aliases`` entry when the integration presents a
client certificate, RFC 8705 §5). With ``dpop`` on, token requests carry a proof and a
``use_dpop_nonce`` refusal is retried once with the server's nonce; the answer must be
a DPoP token, and resource requests get ``Authorization: DPoP`` and a proof each
(security.md #34). A Bearer token answered to a DPoP request is refused: the operator
asked for sender-constrained tokens, and one the server did not bind is not one.

Exception messages must not contain sensitive information: the assertion and any
JWT-shaped text are removed from remote text before it reaches ``str(exc)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jwt
import requests
from django.views.decorators.debug import sensitive_variables

from ..certificates import CLIENT_CERTIFICATE
from ..exceptions import (
    IntegrationError,
    InvalidConfiguration,
    TokenEndpointError,
    TokenEndpointUnreachable,
    TokenError,
)
from ..redaction import redact_text
from ..urlpaths import join_url
from .base import IntegrationLike, JWTProvider, Token, TokenProvider
from .discovery import ServerMetadata
from .dpop import DEFAULT_ALGORITHM
from .sender import MISSING_KEY, DPoPBinding, form_fields, stored_dpop_key

# A token answer is a few KB; anything far larger is not one.
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
# When an answer says nothing of expiry (Salesforce never does): reuse the token this
# long, and rely on the 401 retry if the remote ends it sooner.
DEFAULT_EXPIRES_IN = 600


def clean_remote_text(text: str, *secrets: str) -> str:
    """Remote text made safe for messages: secrets, JWTs and CR/LF removed, capped."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return redact_text(text)[:300]


def parse_expiry(value: Any) -> float:
    """An absolute expiry from epoch seconds (number or digits) or ISO 8601 text."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return float(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError("not a time")


def lookup(payload: dict[str, Any], path: str) -> Any:
    """``payload["a"]["b"]`` for ``"a.b"``; None when any step is missing."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` of a token that is itself a JWT, read without verification: only to
    know when to replace it."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


@dataclass(frozen=True)
class EndpointToken(Token):
    """A token from a token endpoint, with the ``token_type`` it was issued as."""

    token_type: str = ""


def server_metadata(integration: IntegrationLike) -> ServerMetadata | None:
    """The metadata cached on the row (``Integration.server_metadata``), if any."""
    cached = getattr(integration, "server_metadata", None)
    if not isinstance(cached, dict) or not cached.get("issuer"):
        return None
    return ServerMetadata.from_dict(cached)


class TokenEndpoint(TokenProvider):
    """Trades a credential at an endpoint. Subclasses say what they send (``credential``,
    ``form`` or ``send``) and where the answer keeps the token (``answer_fields``)."""

    # Named in error messages. Not "token endpoint": the call log's redaction reads
    # "token <word of 8+ characters>" as a credential.
    endpoint_name: ClassVar[str] = "token URL"
    token_field: ClassVar[str] = "access_token"
    expires_field: ClassVar[str] = ""
    # True for the client_certificate type: the certificate is its only credential.
    requires_certificate: ClassVar[bool] = False

    @sensitive_variables()
    def __init__(self, integration: IntegrationLike, options: dict[str, Any]) -> None:
        super().__init__(integration, options)
        flow = self.options
        secrets = (
            integration.get_secrets()
            if flow.get("dpop") or flow.get("issuer") or self.requires_certificate
            else {}
        )
        self.metadata = server_metadata(integration) if flow.get("issuer") else None
        # The certificate goes with every request of the session (http/session.py);
        # here it only picks the endpoint's mTLS alias.
        self.uses_certificate = bool(secrets.get(CLIENT_CERTIFICATE))
        self.dpop: DPoPBinding | None = None
        if flow.get("dpop"):
            key = stored_dpop_key(secrets, flow.get("dpop_algorithm") or DEFAULT_ALGORITHM)
            if key is None:
                raise InvalidConfiguration(MISSING_KEY, field="auth.dpop", entry=self.slug)
            self.dpop = DPoPBinding(key)
        self.endpoint = self.endpoint_url()

    def endpoint_url(self) -> str:
        """``token_url``, else the discovered token endpoint (its mTLS alias when the
        integration presents a client certificate)."""
        url = self.options.get("token_url")
        if url:
            return str(url)
        if self.metadata is not None:
            found = self.metadata.endpoint("token_endpoint", mtls=self.uses_certificate)
            if found:
                return found
        raise InvalidConfiguration(
            "no token URL: set token_url, or an issuer whose metadata names a token_endpoint "
            "(read on save, or by integrations_discover)",
            field="auth.token_url",
            entry=self.slug,
        )

    def credential(self, request: requests.PreparedRequest | None) -> tuple[str, dict[str, Any]]:
        """What proves the client in the token request, and its claims: nothing here
        (the TLS certificate does); an assertion for the JWT flows."""
        return "", {}

    def form(self, credential: str) -> dict[str, Any]:
        """The token request's form fields (a list value repeats the field)."""
        raise NotImplementedError

    @sensitive_variables("credential")
    def send(self, http: requests.Session, credential: str) -> requests.Response:
        """Send the request to ``self.endpoint``: an OAuth form POST by default, with a
        DPoP proof when ``dpop`` is on."""
        headers = {"Accept": "application/json"}
        if self.dpop is not None:
            headers["DPoP"] = self.dpop.token_proof(self.endpoint)
        return http.post(
            self.endpoint,
            data=form_fields(self.form(credential)),
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,
        )

    def token_kid(self) -> str:
        return ""

    @sensitive_variables("credential", "payload")
    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        for attempt in (1, 2):
            credential, claims = self.credential(request)
            try:
                payload = self.call(http, credential)
                break
            except TokenEndpointError as exc:
                # RFC 9449 §8: one retry with the nonce the refusal carried (kept by
                # ``call``), and a fresh credential (its jti was seen). Never a loop.
                if not (
                    attempt == 1
                    and self.dpop is not None
                    and exc.status_code == 400
                    and exc.error == "use_dpop_nonce"
                    and self.dpop.nonces.get(self.endpoint)
                ):
                    raise
        fields = self.answer_fields()
        value = lookup(payload, fields[0])
        if not isinstance(value, str) or not value:
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name}'s answer has no {fields[0]!r} "
                f"(fields present: {', '.join(sorted(payload)) or 'none'})"
            )
        token_type = self.check_token_type(payload)
        return EndpointToken(
            value,
            expires_at=self.expiry(payload, value, fields[1]),
            kid=self.token_kid(),
            jti=str(claims.get("jti", "")),
            token_type=token_type,
        )

    def answer_fields(self) -> tuple[str, str]:
        """Where the answer keeps the token and its absolute expiry."""
        return self.token_field, self.expires_field

    def check_token_type(self, payload: dict[str, Any]) -> str:
        """The answer's ``token_type``; refuses one this provider would send wrongly."""
        token_type = payload.get("token_type")
        text = token_type if isinstance(token_type, str) else ""
        if self.dpop is not None:
            if text.lower() != "dpop":
                raise TokenError(
                    f"{self.slug}: DPoP was asked for but the {self.endpoint_name} issued a "
                    f"{text or 'untyped'!r} token, not bound to the proof key; refused (turn "
                    "dpop off to accept bearer tokens)"
                )
            return text
        # N_A: RFC 8693's type for an issued token that is not an OAuth access token.
        if text and text.lower() not in {"bearer", "n_a"}:
            hint = " (turn dpop on for DPoP tokens)" if text.lower() == "dpop" else ""
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} issued a {text!r} token; only "
                f"Bearer tokens are supported without DPoP{hint}"
            )
        return text

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        if self.dpop is not None:
            self.dpop.authorize(request, token.value)
        else:
            request.headers["Authorization"] = f"Bearer {token.value}"

    @property
    def credential_headers(self) -> tuple[str, ...]:
        return ("Authorization", "DPoP") if self.dpop is not None else ("Authorization",)

    def expiry(self, payload: dict[str, Any], value: str, expires_field: str) -> float:
        now = time.time()
        if expires_field and lookup(payload, expires_field) is not None:
            try:
                return parse_expiry(lookup(payload, expires_field))
            except ValueError:
                raise TokenError(
                    f"{self.slug}: {expires_field!r} in the {self.endpoint_name}'s answer is "
                    "neither ISO 8601 nor epoch seconds"
                ) from None
        expires_in = payload.get("expires_in")
        if expires_in is not None:
            try:
                return now + float(expires_in)
            except (TypeError, ValueError):
                raise TokenError(
                    f"{self.slug}: expires_in in the {self.endpoint_name}'s answer is not a number"
                ) from None
        return jwt_expiry(value) or now + DEFAULT_EXPIRES_IN

    @sensitive_variables("credential", "response", "body")
    def call(self, http: requests.Session, credential: str) -> dict[str, Any]:
        """Send and read the answer as a JSON object; refusals become typed errors."""
        parts = urlsplit(self.endpoint)
        where = f"{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        try:
            # The session factory bounds the read: overall deadline, size cap (SECURITY
            # 16-17); its errors are IntegrationErrors and pass through as they are.
            response = self.send(http, credential)
            body = response.content
        except IntegrationError:
            raise
        except requests.RequestException as exc:
            detail = clean_remote_text(str(exc), credential)
            # Also a requests.ConnectionError: callers catching requests' errors catch it.
            raise TokenEndpointUnreachable(
                f"{self.slug}: cannot reach the {self.endpoint_name} ({where}): "
                f"{type(exc).__name__}: {detail}"
            ) from None
        if self.dpop is not None:
            self.dpop.nonces.update(self.endpoint, response.headers)
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} ({where}) answered with an oversized body"
            )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not 200 <= response.status_code < 300:
            raise self.refusal(response.status_code, payload, where, credential)
        if not isinstance(payload, dict):
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} ({where}) answered HTTP "
                f"{response.status_code} with something that is not a JSON object"
            )
        return payload

    def refusal(
        self, status: int, payload: Any, where: str, credential: str
    ) -> TokenEndpointError:
        error = description = ""
        if isinstance(payload, dict):
            error = clean_remote_text(str(payload.get("error") or ""), credential)[:100]
            # GitHub and others say it in "message".
            text = payload.get("error_description") or payload.get("message") or ""
            description = clean_remote_text(str(text), credential)
        message = f"{self.slug}: the {self.endpoint_name} ({where}) refused (HTTP {status})"
        if error:
            message += f": {error}"
        if description:
            message += f": {description}"
        return TokenEndpointError(
            message, status_code=status, error=error, error_description=description
        )

    def sender_preview(self) -> dict[str, Any]:
        """What the DPoP proofs of the token request and the test request carry (header
        and claims; public key members only, security.md #34), {} without DPoP."""
        if self.dpop is None:
            return {}
        key = self.dpop.key
        test = self.integration.test_request or {}
        method = str(test.get("method", "GET")).upper()
        test_url = join_url(self.base_url, str(test.get("path", "")))
        resource = key.claims(method, test_url, nonce=self.dpop.nonces.get(test_url))
        resource["ath"] = "(base64url SHA-256 of the access token, per call)"
        return {
            "dpop": {
                "jkt": key.jkt(),
                "token_request": {
                    "header": key.header,
                    "claims": key.claims(
                        "POST", self.endpoint, nonce=self.dpop.nonces.get(self.endpoint)
                    ),
                },
                "test_request": {"header": key.header, "claims": resource},
            }
        }


class TokenEndpointProvider(TokenEndpoint, JWTProvider):
    """A token endpoint flow whose credential is a JWT it mints (an assertion)."""

    @sensitive_variables()
    def credential(self, request: requests.PreparedRequest | None) -> tuple[str, dict[str, Any]]:
        return self.mint(request)

    def token_kid(self) -> str:
        return str(self.signer.headers.get("kid", ""))

    def preview(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        return {**JWTProvider.preview(self, request), **self.sender_preview()}
