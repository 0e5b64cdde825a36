"""Token providers: one module per auth type, registered by name."""

from . import bearer  # noqa: F401  (registers its provider)
from .base import Token, TokenProvider
from .registry import PROVIDERS, auth_type_choices, provider_class

__all__ = ["PROVIDERS", "Token", "TokenProvider", "auth_type_choices", "provider_class"]
