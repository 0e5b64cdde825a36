"""Provider presets: small declarations over the generic flows, one module per provider.

Each declares its provider's published rules (PROVIDERS.md) on a ``preset.Preset``
subclass and is listed, one line, in ``registry.PRESETS``; a test checks that every
module here is listed.
"""
