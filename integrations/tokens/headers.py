"""What a configured header name or authentication scheme may be.

Both end up in an HTTP request line by line: a CR/LF in them would inject headers,
and a name like ``Host`` or ``Transfer-Encoding`` would reroute or reframe the request
instead of carrying a credential (security.md #40: the app must know which header
carries the credential, and that header must be one it may drop).
"""

from __future__ import annotations

import re

# RFC 9110 §5.6.2 token characters: header field names and auth schemes (§11.1).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Hop-by-hop (RFC 9110 §7.6.1), framing and routing headers, and cookies: a credential
# never travels in one of these.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "cookie",
        "expect",
        "forwarded",
        "host",
        "keep-alive",
        "max-forwards",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    }
)
RESERVED_PREFIXES = ("proxy-", "x-forwarded-")


def header_name_problem(name: str) -> str:
    """Why ``name`` cannot carry a credential, or "" when it can."""
    if not HEADER_NAME.fullmatch(name):
        return f"{name!r} is not a valid header name (RFC 9110 token characters only)"
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        return f"{name} is a hop-by-hop, routing or cookie header: it cannot carry a token"
    return ""


def scheme_problem(scheme: str) -> str:
    """Why ``scheme`` is not an authentication scheme (an RFC 9110 token), or ""."""
    if scheme and not HEADER_NAME.fullmatch(scheme):
        return f"{scheme!r} is not an authentication scheme (RFC 9110 token characters only)"
    return ""
