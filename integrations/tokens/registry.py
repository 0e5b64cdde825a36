"""Auth types by name. A new auth type or preset is a module that calls ``register``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import InvalidConfiguration

if TYPE_CHECKING:
    from .base import TokenProvider

P = TypeVar("P", bound="type[TokenProvider]")

PROVIDERS: dict[str, type[TokenProvider]] = {}


def register(cls: P) -> P:
    PROVIDERS[cls.type] = cls
    return cls


def provider_class(auth_type: str) -> type[TokenProvider]:
    try:
        return PROVIDERS[auth_type]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidConfiguration(
            f"unknown auth type {auth_type!r}; use one of {known}", field="auth.type"
        ) from None


def auth_type_choices() -> list[tuple[str, Any]]:
    return [(name, cls.label) for name, cls in sorted(PROVIDERS.items())]
