"""Authorization server metadata: RFC 8414, with OpenID Connect Discovery's fallback.

``discover(session, issuer)`` reads the issuer's metadata through the session it is
given (the app passes its guarded session: address guard, TLS, bounds), from
``/.well-known/oauth-authorization-server`` and then
``/.well-known/openid-configuration``, and returns a ``ServerMetadata``.

The document's ``issuer`` must equal the configured one exactly, character for
character, or it is refused (security.md #36; RFC 8414 §3.3): a server answering for
another issuer is the mix-up attack, so a mismatch stops discovery at once instead of
trying the next address.

Exception messages must not contain sensitive information: remote text is redacted
and capped before it reaches ``str(exc)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ..exceptions import DiscoveryError, IntegrationError, InvalidConfiguration
from ..redaction import redact_text

AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
# A metadata document is a few KB; Okta's, among the largest, is under 10 KB.
MAX_METADATA_BYTES = 256 * 1024
DEFAULT_TIMEOUT = 10.0


def check_issuer(issuer: str, *, allow_http: bool = False) -> str:
    """RFC 8414 §2: an https URL with no query or fragment. ``allow_http`` for
    loopback tests only."""
    parts = urlsplit(issuer)
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidConfiguration("the issuer must be an https URL", field="issuer")
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise InvalidConfiguration(
            "the issuer URL may not have a query or fragment", field="issuer"
        )
    if parts.username or parts.password:
        raise InvalidConfiguration("the issuer URL may not hold credentials", field="issuer")
    return issuer


def metadata_urls(issuer: str) -> list[str]:
    """Where to look, in order: RFC 8414 §3.1 puts the well-known part between host
    and path; many servers (and OpenID Connect Discovery) append it to the issuer."""
    parts = urlsplit(issuer)
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [root + AUTHORIZATION_SERVER + path]
    if path:
        urls.append(issuer.rstrip("/") + AUTHORIZATION_SERVER)
    urls.append(issuer.rstrip("/") + OPENID_CONFIGURATION)
    return urls


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return ()


@dataclass(frozen=True)
class ServerMetadata:
    """What the app uses of an authorization server's metadata."""

    issuer: str
    token_endpoint: str = ""
    jwks_uri: str = ""
    mtls_endpoint_aliases: dict[str, str] = field(default_factory=dict)
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    dpop_signing_alg_values_supported: tuple[str, ...] = ()
    tls_client_certificate_bound_access_tokens: bool = False
    source: str = ""  # the URL it was read from
    fetched_at: float = 0.0  # epoch seconds

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for caching on the row; ``from_dict`` reads it back."""
        values = asdict(self)
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ServerMetadata:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        for name, value in known.items():
            if isinstance(value, list):
                known[name] = tuple(value)
        return cls(**known)

    def endpoint(self, name: str = "token_endpoint", *, mtls: bool = False) -> str:
        """An endpoint's URL; with ``mtls``, its ``mtls_endpoint_aliases`` entry when
        there is one (RFC 8705 §5)."""
        if mtls and self.mtls_endpoint_aliases.get(name):
            return self.mtls_endpoint_aliases[name]
        value = getattr(self, name, "") if name in self.__dataclass_fields__ else ""
        return str(value or "")

    def check_assertion_algorithm(self, algorithm: str) -> None:
        """Refuse a client-assertion algorithm the server does not list (when it lists
        any). Exact names: a server listing only ``Ed25519`` refuses ``EdDSA``."""
        listed = self.token_endpoint_auth_signing_alg_values_supported
        if listed and algorithm not in listed:
            raise InvalidConfiguration(
                f"the authorization server does not accept {algorithm!r} client assertions; "
                f"it lists {', '.join(listed)}",
                field="algorithm",
            )

    def check_dpop_algorithm(self, algorithm: str) -> None:
        listed = self.dpop_signing_alg_values_supported
        if not listed:
            raise InvalidConfiguration(
                "the authorization server's metadata lists no DPoP algorithms "
                "(dpop_signing_alg_values_supported): it may not support DPoP",
                field="dpop_algorithm",
            )
        if algorithm not in listed:
            raise InvalidConfiguration(
                f"the authorization server does not accept {algorithm!r} DPoP proofs; "
                f"it lists {', '.join(listed)}",
                field="dpop_algorithm",
            )


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _endpoint_url(value: Any, name: str, issuer: str, source: str) -> str:
    if value is None or value == "":
        return ""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.hostname or parts.scheme not in {"https", "http"}:
        raise DiscoveryError(
            f"the metadata at {_where(source)} has a malformed {name}", issuer=issuer, url=source
        )
    if parts.scheme == "http" and urlsplit(issuer).scheme == "https":
        raise DiscoveryError(
            f"the metadata at {_where(source)} gives an http:// {name} for an https issuer",
            issuer=issuer,
            url=source,
        )
    return str(value)


def parse_metadata(document: Any, issuer: str, source: str) -> ServerMetadata:
    """Check one document against the configured issuer and keep what is used."""
    if not isinstance(document, dict):
        raise DiscoveryError(
            f"the metadata at {_where(source)} is not a JSON object", issuer=issuer, url=source
        )
    if document.get("issuer") != issuer:
        named = redact_text(str(document.get("issuer")), limit=200)
        raise DiscoveryError(
            f"the metadata at {_where(source)} is for issuer {named!r}, not the configured "
            f"{issuer!r}; refused (RFC 8414 §3.3)",
            issuer=issuer,
            url=source,
        )
    aliases_value = document.get("mtls_endpoint_aliases") or {}
    if not isinstance(aliases_value, dict):
        raise DiscoveryError(
            f"the metadata at {_where(source)} has a malformed mtls_endpoint_aliases",
            issuer=issuer,
            url=source,
        )
    aliases = {
        str(name): _endpoint_url(url, f"mtls_endpoint_aliases.{name}", issuer, source)
        for name, url in aliases_value.items()
    }
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=_endpoint_url(
            document.get("token_endpoint"), "token_endpoint", issuer, source
        ),
        jwks_uri=_endpoint_url(document.get("jwks_uri"), "jwks_uri", issuer, source),
        mtls_endpoint_aliases={name: url for name, url in aliases.items() if url},
        token_endpoint_auth_methods_supported=_strings(
            document.get("token_endpoint_auth_methods_supported")
        ),
        token_endpoint_auth_signing_alg_values_supported=_strings(
            document.get("token_endpoint_auth_signing_alg_values_supported")
        ),
        dpop_signing_alg_values_supported=_strings(
            document.get("dpop_signing_alg_values_supported")
        ),
        tls_client_certificate_bound_access_tokens=document.get(
            "tls_client_certificate_bound_access_tokens"
        )
        is True,
        source=source,
        fetched_at=time.time(),
    )


def _read(response: requests.Response, issuer: str, url: str) -> bytes:
    """The body, at most MAX_METADATA_BYTES (the session bounds time and its own cap)."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_METADATA_BYTES:
        raise DiscoveryError(
            f"the metadata at {_where(url)} is larger than {MAX_METADATA_BYTES // 1024} KB",
            issuer=issuer,
            url=url,
        )
    body = b""
    for chunk in response.iter_content(chunk_size=16384):
        body += chunk
        if len(body) > MAX_METADATA_BYTES:
            raise DiscoveryError(
                f"the metadata at {_where(url)} is larger than {MAX_METADATA_BYTES // 1024} KB",
                issuer=issuer,
                url=url,
            )
    return body


def fetch_document(session: requests.Session, url: str, issuer: str, timeout: Any) -> Any:
    """GET one metadata URL: the parsed JSON, or None for a 404/410 (try the next)."""
    try:
        response = session.get(
            url,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            if response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                raise DiscoveryError(
                    f"the metadata at {_where(url)} answered HTTP {response.status_code}",
                    issuer=issuer,
                    url=url,
                )
            body = _read(response, issuer, url)
        finally:
            response.close()
    except IntegrationError:
        raise
    except requests.RequestException as exc:
        detail = redact_text(str(exc), limit=300)
        raise DiscoveryError(
            f"cannot read the metadata at {_where(url)}: {type(exc).__name__}: {detail}",
            issuer=issuer,
            url=url,
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        raise DiscoveryError(
            f"the metadata at {_where(url)} is not JSON", issuer=issuer, url=url
        ) from None


def discover(
    session: requests.Session,
    issuer: str,
    *,
    timeout: Any = DEFAULT_TIMEOUT,
    allow_http: bool = False,
) -> ServerMetadata:
    """Read and check the issuer's metadata (see the module docstring)."""
    check_issuer(issuer, allow_http=allow_http)
    tried: list[str] = []
    for url in metadata_urls(issuer):
        document = fetch_document(session, url, issuer, timeout)
        if document is None:
            tried.append(_where(url))
            continue
        return parse_metadata(document, issuer, url)
    raise DiscoveryError(
        f"no authorization server metadata for {issuer!r} (HTTP 404 at {', '.join(tried)})",
        issuer=issuer,
    )
