"""Validation of an integration as a whole; errors keyed by dotted field names.

The same rules run on model save (``Integration.clean``), in admin forms and at import,
so an operator cannot store a configuration the remote will refuse.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.views.decorators.debug import sensitive_variables

from .exceptions import InvalidConfiguration, SecretDecryptionError
from .tokens.base import TokenProvider
from .tokens.custody import device_problem, owner_of
from .tokens.headers import HEADER_NAME
from .tokens.registry import auth_errors, build_provider, provider_class, with_defaults
from .tokens.sender_checks import sender_errors
from .tokens.signing import ALGORITHMS
from .urlpaths import check_url

if TYPE_CHECKING:
    from .models import Integration

# Also the names other modules import from here (mypy strict wants them listed).
__all__ = [
    "HEADER_NAME",
    "HTTP_METHODS",
    "auth_errors",
    "auth_structure_errors",
    "build_provider",
    "check_headers",
    "check_test_request",
    "check_url",
    "option_names",
    "unstorable",
    "validate_integration",
    "with_defaults",
]

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def unstorable(value: Any) -> str:
    """Why ``value`` cannot be stored on every database, or "" if it can: NaN and
    ±Infinity (Python's json reads and writes them; JSON and PostgreSQL do not), NUL
    characters (PostgreSQL refuses them in text and jsonb; SQLite would keep them) and
    lone surrogates (a JSON file may spell one, "\\ud800"; no UTF-8 database takes it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and Infinity are not JSON numbers"
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (a lone surrogate such as \\ud800 is not)"
        return ""
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return ""
    for item in items:
        problem = unstorable(item)
        if problem:
            return problem
    return ""


@sensitive_variables("secrets")
def validate_integration(integration: Integration) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for field, value in (
        ("name", integration.name),
        ("base_url", integration.base_url),
        ("ca_bundle", integration.ca_bundle),
        ("idempotency_header", integration.idempotency_header),
        ("test_request", integration.test_request),
        ("auth", integration.auth_config),
    ):
        problem = unstorable(value)
        if problem:
            fail(field, problem)
    if errors:
        return errors

    try:
        check_url(integration.base_url or "", "base_url")
    except InvalidConfiguration as exc:
        fail("base_url", exc.message)
    check_headers(integration.headers, fail)
    if integration.timeout is None or not 0 < integration.timeout <= 300:
        fail("timeout", "must be between 0 and 300 seconds")
    check_test_request(integration.test_request, fail)

    if not isinstance(integration.auth_config, dict):
        fail("auth", "auth options must be a JSON object")
        return errors
    try:
        cls = provider_class(integration.auth_type)
    except InvalidConfiguration as exc:
        fail("auth.type", exc.message)
        return errors
    problems = auth_structure_errors(cls, integration.auth_type, integration.auth_config)
    for field, message in problems:
        fail(field, message)
    if problems:
        return errors
    try:
        secrets = integration.get_secrets()
    except SecretDecryptionError as exc:
        fail("auth", str(exc))
        return errors
    auth, cleaned = auth_errors(integration.auth_type, {**integration.auth_config, **secrets})
    errors.update(auth)
    if not auth:
        # A configured HSM or KMS is asked for its public key: a wrong PIN, an unknown
        # label or a key of the wrong type is refused now, not at the first call.
        preset_key = getattr(cls, "signing_key", None)
        algorithm = str(cleaned.get("algorithm") or getattr(preset_key, "algorithm", ""))
        device = device_problem(owner_of(integration), algorithm, cleaned)
        if device:
            fail(f"auth.{device[0]}", device[1])
        # Client certificate, DPoP key, options against the cached issuer metadata
        # (security.md #35-36); reading the metadata is discovery_cache's, before.
        metadata = getattr(integration, "server_metadata", None)
        for field, message in sender_errors(cls, cleaned, secrets, metadata):
            fail(field, message)
    return errors


def auth_structure_errors(
    cls: type[TokenProvider], auth_type: str, options: dict[str, Any]
) -> list[tuple[str, str]]:
    """Problems with the shape of the plain auth options, before any key is parsed."""
    problems = [
        # Plain options are stored and exported in clear: a secret there would leak.
        (f"auth.{name}", "is a secret: it is stored encrypted, never among plain options")
        for name in sorted(set(cls.secret_fields) & set(options))
    ]
    algorithm = options.get("algorithm")
    if algorithm is not None and algorithm not in ALGORITHMS:
        # Said plainly, before the form's generic "Select a valid choice" (security.md #1).
        unsigned = " (unsigned tokens are never sent)" if str(algorithm).lower() == "none" else ""
        problems.append(
            (
                "auth.algorithm",
                f"{algorithm!r} is not allowed{unsigned}; use one of {', '.join(ALGORITHMS)}",
            )
        )
    unknown = sorted(set(options) - option_names(cls))
    if unknown:
        problems.append(("auth", f"unknown option(s) {', '.join(unknown)} for {auth_type}"))
    return problems


def option_names(cls: type[TokenProvider]) -> set[str]:
    """The plain and secret option names an auth type's Options form declares."""
    form_class: Any = cls.Options  # django-stubs cannot type a form class held in a ClassVar
    return set(form_class.base_fields)


def check_headers(headers: Any, fail: Any) -> None:
    """Header names are HTTP tokens and values carry no CR/LF (no header injection)."""
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        fail("headers", "must be a JSON object of header names to string values")
        return
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            fail("headers", f"{name!r} is not a valid header name")
        elif any(char in value for char in "\r\n\x00"):
            fail("headers", f"the value of {name} contains a line break or NUL")


def check_test_request(test_request: Any, fail: Any) -> None:
    if not test_request:
        return
    if not isinstance(test_request, dict):
        fail("test_request", "must be a JSON object")
        return
    unknown = sorted(set(test_request) - {"method", "path", "expect_status"})
    if unknown:
        fail("test_request", f"unknown field(s) {', '.join(unknown)}")
    method = str(test_request.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        fail("test_request", f"method {method!r} is not an HTTP method")
    if not isinstance(test_request.get("path", ""), str):
        fail("test_request", "path must be a string")
    expect = test_request.get("expect_status", [])
    if not isinstance(expect, list) or not all(
        isinstance(code, int) and 100 <= code <= 599 for code in expect
    ):
        fail("test_request", "expect_status must be a list of HTTP status codes")
