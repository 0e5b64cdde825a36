"""Provider presets: thin layers over the generic flows, one module per provider.

Each maps its provider's fields onto a generic flow (``map_options``) and enforces the
provider's published rules on save in its ``Options`` form (PROVIDERS.md); ``common``
holds what they all map alike.
"""

from . import (  # noqa: F401  (register their providers)
    app_store_connect,
    atlassian_connect,
    box,
    docusign,
    github,
    google,
    salesforce,
    snowflake,
)
