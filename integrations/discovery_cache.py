"""Discovery on save: what the save paths (admin form, configuration-file import, the
``integrations_discover`` command) do before an integration with sender-constrained
options is validated and stored.

``refresh_discovery(integration)`` reads the metadata of its ``auth.issuer`` (RFC 8414,
then OpenID Connect Discovery) through a guarded session (address guard, TLS, bounds,
the integration's CA bundle, and its client certificate when it has one), refuses a
document naming another issuer (security.md #36), and caches it on the row with when it
was read. ``prepare_for_save(integration)`` also generates the DPoP proof key when
``dpop`` is on and none suits ``dpop_algorithm`` (security.md #34), and returns the
problems keyed as ``validation`` names fields. Neither saves: the caller does, after
validation (which then checks the options against the metadata, without I/O).

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .exceptions import DiscoveryError, InvalidConfiguration, SecretDecryptionError
from .http.mtls import integration_ssl_context
from .http.session import create_session
from .settings import app_settings
from .tokens.discovery import ServerMetadata, discover
from .tokens.sender import ensure_dpop_key

if TYPE_CHECKING:
    from .models import Integration


def issuer_of(integration: Integration) -> str:
    options = integration.auth_config if isinstance(integration.auth_config, dict) else {}
    issuer = options.get("issuer")
    return issuer if isinstance(issuer, str) else ""


@sensitive_variables("mtls")
def refresh_discovery(integration: Integration) -> ServerMetadata | None:
    """Read the issuer's metadata and cache it on ``integration`` (not saved); None, and
    the cache emptied, without an issuer. Raises DiscoveryError (unreachable, malformed,
    another issuer), InvalidConfiguration (a bad client certificate) or
    SecretDecryptionError."""
    issuer = issuer_of(integration)
    if not issuer:
        integration.server_metadata = {}
        integration.metadata_read_at = None
        return None
    mtls = integration_ssl_context(integration)
    http = create_session(ca_bundle=integration.ca_bundle, ssl_context=mtls[1] if mtls else None)
    try:
        metadata = discover(
            http, issuer, timeout=(float(app_settings.CONNECT_TIMEOUT), integration.timeout)
        )
    finally:
        http.close()
    integration.server_metadata = metadata.as_dict()
    integration.metadata_read_at = timezone.now()
    return metadata


def prepare_for_save(integration: Integration) -> dict[str, str]:
    """The DPoP key and the metadata, ready for validation; problems as ``{field:
    message}`` (``auth.issuer`` for discovery, ``client_certificate``, ``auth``)."""
    try:
        ensure_dpop_key(integration)
        refresh_discovery(integration)
    except DiscoveryError as exc:
        return {"auth.issuer": str(exc)}
    except InvalidConfiguration as exc:
        return {exc.field or "auth": exc.message}
    except SecretDecryptionError as exc:
        return {"auth": str(exc)}
    return {}
