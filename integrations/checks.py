"""System checks for the storage key ring (``manage.py check``).

Check messages name the setting and the key's position, never a key.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .crypto import configured_keys, parse_key
from .exceptions import IntegrationConfigurationError
from .settings import app_settings

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
