"""System checks for the storage key ring (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import app_settings
from .crypto import parse_key
from .exceptions import IntegrationConfigurationError


@register()
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    keys = [key for key in app_settings.ENCRYPTION_KEYS if key.strip()]
    if not keys:
        level = Warning if settings.DEBUG else Error
        messages.append(
            level(
                "INTEGRATIONS_ENCRYPTION_KEYS is empty: secrets cannot be stored or read.",
                hint='Set it to a key from python -c "from cryptography.fernet import '
                'Fernet; print(Fernet.generate_key().decode())".',
                id="integrations.E001" if not settings.DEBUG else "integrations.W001",
            )
        )
    for position, key in enumerate(keys, start=1):
        try:
            parse_key(key)
        except IntegrationConfigurationError as exc:
            messages.append(
                Error(
                    f"INTEGRATIONS_ENCRYPTION_KEYS key #{position}: {exc}",
                    id="integrations.E002",
                )
            )
        if key.strip() == settings.SECRET_KEY:
            messages.append(
                Error(
                    f"INTEGRATIONS_ENCRYPTION_KEYS key #{position} equals SECRET_KEY.",
                    hint="The storage key ring must be independent of SECRET_KEY, which "
                    "signs sessions and rotates on its own schedule.",
                    id="integrations.E003",
                )
            )
    if not settings.DEBUG and app_settings.ALLOW_PRIVATE_NETWORKS:
        messages.append(
            Warning(
                "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS is on outside DEBUG: integrations may "
                "reach loopback, private and cloud-metadata addresses.",
                id="integrations.W002",
            )
        )
    return messages
