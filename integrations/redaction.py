"""Keeping credentials out of text: URLs, exception messages, log records (security.md #26).

``redact_text`` masks what looks like a credential in free text (JWTs, ``Bearer ...``,
PEM blocks, ``token=...``) and every query value; ``RedactingFilter`` applies it to
urllib3's log records, which print full request URLs, queries included, at DEBUG.
"""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import urlsplit, urlunsplit

MAX_ERROR_CHARS = 500
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Credentials whose vendors give them a recognisable prefix, wherever they appear (a
# path segment, a bare query, free text): Stripe, GitHub, Slack, GitLab, AWS key ids.
_PREFIXED_TOKEN = re.compile(
    r"\b(?:[sr]k_(?:live|test)_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{16,}"
    r"|AKIA[0-9A-Z]{16})"
)
_PATH_SECRETS = (_JWT, _PREFIXED_TOKEN)
_SECRET_PATTERNS = [
    _JWT,
    _PREFIXED_TOKEN,
    re.compile(r"(?i)((?:bearer|token|basic|jwt)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"-----BEGIN[^-]*-----.*?(?:-----END[^-]*-----|$)", re.S),
    # Every query value, and secret-named form fields anywhere.
    re.compile(r"([?&][^=&\s'\"()]+=)[^&\s'\"()]+"),
    # A bare query item (``?sk_live_X``, ``&TOKEN``) is a value without a name.
    re.compile(r"([?&])[^=&\s'\"()#]+(?=[&\s'\"()#]|$)"),
    re.compile(r"(?i)((?:assertion|token|secret|password|key|code)=)[^&\s'\"]+"),
]
URLLIB3_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) if match.lastindex else "") + "[redacted]"


def redact_text(text: str, *, limit: int | None = MAX_ERROR_CHARS) -> str:
    """Mask credential-shaped substrings and query values; escape CR/LF (log injection)
    and NUL (PostgreSQL refuses it in text)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\x00")
    return text if limit is None else text[:limit]


def redact_url(url: str) -> str:
    """Scheme, host, port and path; userinfo and fragment dropped, query values (and
    bare query items) masked, credential-shaped path segments (JWTs, vendor-prefixed
    tokens) masked."""
    if "?" in url or "@" in url or "#" in url or _has_path_secret(url):
        return _redact_url(url)
    # Most calls log one of a few URLs. Only these, which hold nothing to mask, are
    # cached: a query value, password or token must not stay in memory as a cache key.
    return _redact_plain_url(url)


def _has_path_secret(text: str) -> bool:
    return any(pattern.search(text) for pattern in _PATH_SECRETS)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # e.g. an unclosed "[" or a port out of range
        return "[malformed URL]"
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}=…" if "=" in pair else "…"
        for pair in parts.query.split("&")
        if pair
    )
    path = parts.path
    for pattern in _PATH_SECRETS:
        path = pattern.sub("[redacted]", path)
    return urlunsplit((parts.scheme, host, path, query, "")).replace("\x00", "\\x00")


@functools.lru_cache(maxsize=1024)
def _redact_plain_url(url: str) -> str:
    return _redact_url(url)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with ``redact_text`` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message, limit=None)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = RedactingFilter()


def install_log_filter() -> None:
    """Attach the filter to urllib3's loggers (where the records are made: a filter on
    a parent logger would not see its children's records). Idempotent."""
    for name in URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
