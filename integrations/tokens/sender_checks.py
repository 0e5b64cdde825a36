"""The save-time checks of sender-constrained tokens and discovery, without I/O: the
client certificate, the DPoP proof key, and the options against the metadata cached on
the row (``validation`` runs them on every save path; reading the metadata is
``discovery_cache``'s job, before).

Errors are ``(field, message)`` with ``validation``'s names: ``client_certificate``,
``auth.<option>``. Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..certificates import CLIENT_CERTIFICATE, parse_client_certificate
from ..exceptions import InvalidConfiguration
from .base import TokenProvider
from .discovery import ServerMetadata
from .dpop import DEFAULT_ALGORITHM
from .endpoint import TokenEndpoint
from .sender import MISSING_KEY, stored_dpop_key

NOT_READ = (
    "the issuer's metadata has not been read: save the integration (admin or import), "
    "or run integrations_discover"
)
TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")


@sensitive_variables("secrets")
def sender_errors(
    cls: type[TokenProvider],
    options: dict[str, Any],
    secrets: dict[str, str],
    cached: Any,
) -> list[tuple[str, str]]:
    """Problems with ``options`` (cleaned by the type's Options form), the secrets and
    the cached metadata (``Integration.server_metadata``); [] when all is well."""
    problems: list[tuple[str, str]] = []
    certificate = secrets.get(CLIENT_CERTIFICATE)
    if certificate:
        try:
            parse_client_certificate(certificate)  # match, expiry, strength: security.md #35
        except InvalidConfiguration as exc:
            problems.append((CLIENT_CERTIFICATE, exc.message))
    elif issubclass(cls, TokenEndpoint) and cls.requires_certificate:
        problems.append(
            (CLIENT_CERTIFICATE, f"the {cls.type} auth type needs a client certificate")
        )
    if not issubclass(cls, TokenEndpoint):
        return problems
    dpop_algorithm = str(options.get("dpop_algorithm") or DEFAULT_ALGORITHM)
    if options.get("dpop") and stored_dpop_key(secrets, dpop_algorithm) is None:
        problems.append(("auth.dpop", MISSING_KEY))
    issuer = options.get("issuer")
    if issuer:
        problems.extend(metadata_errors(cls, options, issuer, cached, bool(certificate)))
    return problems


def metadata_errors(
    cls: type[TokenEndpoint],
    options: dict[str, Any],
    issuer: str,
    cached: Any,
    with_certificate: bool,
) -> list[tuple[str, str]]:
    """The options against the issuer's metadata (security.md #36: its issuer exactly)."""
    if not isinstance(cached, dict) or cached.get("issuer") != issuer:
        return [("auth.issuer", NOT_READ)]
    metadata = ServerMetadata.from_dict(cached)
    problems: list[tuple[str, str]] = []
    if not options.get("token_url") and not metadata.endpoint(
        "token_endpoint", mtls=with_certificate
    ):
        problems.append(
            ("auth.token_url", "the issuer's metadata names no token_endpoint: set token_url")
        )
    try:
        if cls.type == "client_assertion" or options.get("client_assertion"):
            metadata.check_assertion_algorithm(str(options.get("algorithm") or ""))
    except InvalidConfiguration as exc:
        problems.append((f"auth.{exc.field}", exc.message))
    try:
        if options.get("dpop"):
            metadata.check_dpop_algorithm(str(options.get("dpop_algorithm") or DEFAULT_ALGORITHM))
    except InvalidConfiguration as exc:
        problems.append((f"auth.{exc.field}", exc.message))
    methods = metadata.token_endpoint_auth_methods_supported
    if cls.requires_certificate and methods and not set(TLS_METHODS) & set(methods):
        problems.append((
            "auth.issuer",
            "the authorization server lists neither tls_client_auth nor "
            "self_signed_tls_client_auth among its token endpoint auth methods",
        ))
    return problems
