"""System checks (``manage.py check``): the storage key ring and the settings' values.

Check messages name the setting and the key's position, never a key or a value that
could be one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .crypto import configured_keys, parse_key
from .exceptions import IntegrationConfigurationError, InvalidConfiguration
from .settings import DEFAULTS, app_settings
from .urlpaths import check_url

GENERATE_HINT = (
    'Generate one with python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())".'
)


@register()
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001 no keys outside DEBUG, E002 a malformed key, E003 a key equal to SECRET_KEY."""
    messages: list[CheckMessage] = []
    keys = configured_keys()
    if not keys:
        if settings.DEBUG:
            messages.append(
                Warning(
                    "INTEGRATIONS_ENCRYPTION_KEYS is empty: secrets cannot be stored or read.",
                    hint=GENERATE_HINT,
                    id="integrations.W001",
                )
            )
        else:
            messages.append(
                Error(
                    "INTEGRATIONS_ENCRYPTION_KEYS is empty: secrets cannot be stored or read.",
                    hint=GENERATE_HINT,
                    id="integrations.E001",
                )
            )
    signing_keys = _signing_keys()
    for position, key in enumerate(keys, start=1):
        try:
            raw = parse_key(key)
        except IntegrationConfigurationError as exc:
            messages.append(
                Error(
                    f"INTEGRATIONS_ENCRYPTION_KEYS key #{position}: {exc}",
                    hint=GENERATE_HINT,
                    id="integrations.E002",
                )
            )
            raw = None
        if key in signing_keys or (raw is not None and raw in signing_keys):
            messages.append(
                Error(
                    f"INTEGRATIONS_ENCRYPTION_KEYS key #{position} equals SECRET_KEY "
                    "(or one of SECRET_KEY_FALLBACKS).",
                    hint="The storage key ring must be independent of SECRET_KEY, which "
                    "signs sessions and rotates on its own schedule. " + GENERATE_HINT,
                    id="integrations.E003",
                )
            )
    if not settings.DEBUG and app_settings.ALLOW_PRIVATE_NETWORKS:
        messages.append(
            Warning(
                "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS is on outside DEBUG: integrations may "
                "reach loopback, private and cloud-metadata addresses.",
                hint="Leave it off in production unless every remote API is on your own "
                "private network.",
                id="integrations.W002",
            )
        )
    return messages


def _signing_keys() -> set[str | bytes]:
    """SECRET_KEY and its fallbacks, as text and as bytes (a key ring entry could be
    either spelled the same or encode the same bytes)."""
    values = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    found: set[str | bytes] = set()
    for value in values:
        if isinstance(value, bytes):
            found.add(value)
        elif value:
            found.update({value, value.encode("utf-8")})
    return found


LOG_WRITERS = ("sync", "background")
# Settings that must be numbers above zero, and those that may also be zero (0 turns
# the circuit breaker off, no retries, no recheck delay).
POSITIVE = ("TOKEN_LOCK_TIMEOUT", "TOKEN_CACHE_SIZE", "MAX_RESPONSE_BYTES", "CONNECT_TIMEOUT",
            "DEADLINE_FACTOR", "POOL_MAXSIZE", "CIRCUIT_RESET", "LOG_RETENTION_DAYS",
            "HEALTH_FAILURES")
NOT_NEGATIVE = ("TOKEN_REFRESH_MARGIN", "RETRY_TOTAL", "RETRY_BACKOFF", "RETRY_AFTER_CAP",
                "SESSION_RECHECK", "CIRCUIT_FAILURES")
WHOLE_NUMBERS = {"TOKEN_CACHE_SIZE", "MAX_RESPONSE_BYTES", "POOL_MAXSIZE", "LOG_RETENTION_DAYS",
                 "RETRY_TOTAL", "CIRCUIT_FAILURES", "HEALTH_FAILURES"}
NON_EMPTY_TEXT = ("USER_AGENT", "TASK_QUEUE")


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E010 a setting whose value the app cannot use (a typo would otherwise be silently
    read as the default behaviour): each message names the setting."""
    problems: list[str] = []
    if app_settings.LOG_WRITER not in LOG_WRITERS:
        problems.append(f"INTEGRATIONS_LOG_WRITER must be one of {', '.join(LOG_WRITERS)}")
    for name in (*POSITIVE, *NOT_NEGATIVE):
        value = getattr(app_settings, name)
        whole = name in WHOLE_NUMBERS
        kind = "a whole number" if whole else "a number"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            problems.append(f"INTEGRATIONS_{name} must be {kind} (default {DEFAULTS[name]})")
        elif value != value or value < 0 or (name in POSITIVE and value == 0):  # NaN too
            bound = "above 0" if name in POSITIVE else "0 or more"
            problems.append(f"INTEGRATIONS_{name} must be {kind} {bound}")
    for name in NON_EMPTY_TEXT:
        value = getattr(app_settings, name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"INTEGRATIONS_{name} must be a non-empty string")
    problems.extend(_place_problems())
    return [Error(problem, id="integrations.E010") for problem in problems]


def _place_problems() -> list[str]:
    """Settings that name a place: a cache alias, a directory, a webhook URL."""
    problems: list[str] = []
    alias = app_settings.CHART_CACHE
    if not isinstance(alias, str) or (alias and alias not in settings.CACHES):
        problems.append(
            "INTEGRATIONS_CHART_CACHE must be one of CACHES' aliases "
            f"({', '.join(settings.CACHES)}) or empty"
        )
    folder = app_settings.SECRETS_DIR
    if not isinstance(folder, str) or (folder and not Path(folder).is_dir()):
        problems.append("INTEGRATIONS_SECRETS_DIR must be an existing directory or empty")
    webhook = app_settings.ALERT_WEBHOOK
    try:
        if not isinstance(webhook, str):
            raise InvalidConfiguration("must be a string")
        if webhook:
            check_url(webhook, "INTEGRATIONS_ALERT_WEBHOOK")
    except InvalidConfiguration as exc:
        problems.append(f"INTEGRATIONS_ALERT_WEBHOOK {exc.message}")
    return problems
