"""Token endpoints: the one place a JWT is traded for an access token.

``TokenEndpointProvider`` is the base of the flows that call one (``jwt_grant``,
``client_assertion``, ``jwt_exchange`` and their presets): it mints the assertion,
sends it through the app's session factory (address guard, deadline, size cap) with
the integration's timeouts and no redirects, and turns the answer into a ``Token``, or
a refusal into a ``TokenEndpointError`` carrying OAuth's ``error`` and
``error_description``.

Exception messages must not contain sensitive information: the assertion and any
JWT-shaped text are removed from remote text before it reaches ``str(exc)``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jwt
import requests
from django.views.decorators.debug import sensitive_variables

from ..exceptions import IntegrationError, TokenEndpointError, TokenEndpointUnreachable, TokenError
from ..redaction import redact_text
from .base import IntegrationLike, JWTProvider, Token

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


class TokenEndpointProvider(JWTProvider):
    """Mints an assertion and trades it at an endpoint. Subclasses say where and how
    (``endpoint_url``, ``send`` or ``form``) and where the answer keeps the token
    (``answer_fields``)."""

    # Named in error messages. Not "token endpoint": the call log's redaction reads
    # "token <word of 8+ characters>" as a credential.
    endpoint_name: ClassVar[str] = "token URL"
    token_field: ClassVar[str] = "access_token"
    expires_field: ClassVar[str] = ""

    @sensitive_variables()
    def __init__(self, integration: IntegrationLike, options: dict[str, Any]) -> None:
        super().__init__(integration, options)
        self.endpoint = self.endpoint_url()

    def endpoint_url(self) -> str:
        return str(self.options["token_url"])

    @sensitive_variables()
    def send(self, http: requests.Session, assertion: str) -> requests.Response:
        """Send the assertion to ``self.endpoint``: an OAuth form POST by default."""
        return http.post(
            self.endpoint,
            data=self.form(assertion),
            headers={"Accept": "application/json"},
            timeout=self.timeout,
            allow_redirects=False,
        )

    def form(self, assertion: str) -> dict[str, str]:
        """The token request's form fields."""
        raise NotImplementedError

    @sensitive_variables("assertion", "payload")
    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        assertion, claims = self.mint(request)
        payload = self.call(http, assertion)
        fields = self.answer_fields()
        value = lookup(payload, fields[0])
        if not isinstance(value, str) or not value:
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name}'s answer has no {fields[0]!r} "
                f"(fields present: {', '.join(sorted(payload)) or 'none'})"
            )
        self.check_token_type(payload)
        return Token(
            value,
            expires_at=self.expiry(payload, value, fields[1]),
            kid=self.signer.headers.get("kid", ""),
            jti=str(claims.get("jti", "")),
        )

    def answer_fields(self) -> tuple[str, str]:
        """Where the answer keeps the token and its absolute expiry."""
        return self.token_field, self.expires_field

    def check_token_type(self, payload: dict[str, Any]) -> None:
        token_type = payload.get("token_type")
        # N_A: RFC 8693's type for an issued token that is not an OAuth access token.
        if isinstance(token_type, str) and token_type.lower() not in {"bearer", "n_a"}:
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} issued a {token_type!r} token; only "
                "Bearer tokens are supported"
            )

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

    @sensitive_variables("assertion", "response", "body")
    def call(self, http: requests.Session, assertion: str) -> dict[str, Any]:
        """Send and read the answer as a JSON object; refusals become typed errors."""
        parts = urlsplit(self.endpoint)
        where = f"{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        try:
            # The session factory bounds the read: overall deadline, size cap (SECURITY
            # 16-17); its errors are IntegrationErrors and pass through as they are.
            response = self.send(http, assertion)
            body = response.content
        except IntegrationError:
            raise
        except requests.RequestException as exc:
            detail = clean_remote_text(str(exc), assertion)
            # Also a requests.ConnectionError: callers catching requests' errors catch it.
            raise TokenEndpointUnreachable(
                f"{self.slug}: cannot reach the {self.endpoint_name} ({where}): "
                f"{type(exc).__name__}: {detail}"
            ) from None
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} ({where}) answered with an oversized body"
            )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not 200 <= response.status_code < 300:
            raise self.refusal(response.status_code, payload, where, assertion)
        if not isinstance(payload, dict):
            raise TokenError(
                f"{self.slug}: the {self.endpoint_name} ({where}) answered HTTP "
                f"{response.status_code} with something that is not a JSON object"
            )
        return payload

    def refusal(self, status: int, payload: Any, where: str, assertion: str) -> TokenEndpointError:
        error = description = ""
        if isinstance(payload, dict):
            error = clean_remote_text(str(payload.get("error") or ""), assertion)[:100]
            # GitHub and others say it in "message".
            text = payload.get("error_description") or payload.get("message") or ""
            description = clean_remote_text(str(text), assertion)
        message = f"{self.slug}: the {self.endpoint_name} ({where}) refused (HTTP {status})"
        if error:
            message += f": {error}"
        if description:
            message += f": {description}"
        return TokenEndpointError(
            message, status_code=status, error=error, error_description=description
        )
