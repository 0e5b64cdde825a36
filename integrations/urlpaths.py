"""URL rules shared by token providers, validation and the HTTP layer.

``check_url`` is what a stored URL must satisfy (security.md #10); ``join_url`` is how a
request path is appended to an integration's ``base_url`` (docs/reference.md, Python
API: never RFC 3986's join, which would drop ``/api/v3``); ``origin`` is what
"the same host" means when credentials must stay home.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .exceptions import InvalidConfiguration


def check_url(url: str, field: str) -> None:
    """http/https with a host and no user:pass@ (security.md #10)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise InvalidConfiguration("not a valid URL", field=field) from None
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise InvalidConfiguration("must not contain spaces or control characters", field=field)
    if parts.scheme not in {"http", "https"}:
        raise InvalidConfiguration("must be an http or https URL", field=field)
    if not parts.hostname:
        raise InvalidConfiguration("has no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidConfiguration(
            "must not contain user:password@ (credentials belong in the auth settings)",
            field=field,
        )


def join_url(base_url: str, path: str) -> str:
    """Append ``path`` to ``base_url`` with exactly one slash."""
    if not path:
        return base_url
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]), lower-cased."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
