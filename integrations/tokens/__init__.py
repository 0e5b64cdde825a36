"""Token providers: one module per auth type, listed in ``registry``; presets in ``presets``.

``preview`` and ``public_key_info`` show what an operator may see of an integration's
credentials; ``cache.token_cache`` is the process's token cache.
"""

from .base import Token, TokenProvider
from .preview import preview, public_key_info
from .registry import PROVIDERS, auth_type_choices, build_provider, provider_class

__all__ = [
    "PROVIDERS",
    "Token",
    "TokenProvider",
    "auth_type_choices",
    "build_provider",
    "preview",
    "provider_class",
    "public_key_info",
]
