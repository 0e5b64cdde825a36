"""Token providers: one module per auth type, registered by name; presets in ``presets``.

``preview`` and ``public_key_info`` show what an operator may see of an integration's
credentials; ``tokens`` is the process's token cache.
"""

from . import assertion, bearer, exchange, grant, presets  # noqa: F401  (register providers)
from .base import Token, TokenProvider
from .preview import preview, public_key_info
from .registry import PROVIDERS, auth_type_choices, provider_class

__all__ = [
    "PROVIDERS",
    "Token",
    "TokenProvider",
    "auth_type_choices",
    "preview",
    "provider_class",
    "public_key_info",
]
