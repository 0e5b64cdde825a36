"""Where a stored credential is sent, and the rule for changing it (security.md #30).

Someone who may change an integration but never sees its secrets could otherwise point
it at a server of their own (base URL, token URL, exchange URL...) while leaving the
secret blank (kept), and receive a token signed with the organisation's key. So a change
that sends a kept secret, or a token made with it, to another origin (scheme, host,
port) is refused unless the secret is entered again. Servers it already reaches are
fine: a new path on the same origin, or a token URL on the API's own host. The admin
form and the configuration-file import share this rule.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from django import forms

from .exceptions import SecretDecryptionError
from .tokens import PROVIDERS, TokenProvider
from .tokens.base import URLField
from .tokens.custody import SIGNER_FIELD
from .urlpaths import origin

if TYPE_CHECKING:
    from .models import Integration

# Options that name a server by convention, whatever their field type.
DESTINATION_NAMES = ("issuer",)
DESTINATION_SUFFIXES = ("_url", "_uri")


def destination_options(cls: type[TokenProvider]) -> list[str]:
    """The auth type's options that say where a credential or token goes."""
    return [
        name
        for name, field in cls.Options.base_fields.items()
        if name not in cls.secret_fields
        and (
            isinstance(field, URLField | forms.URLField)
            or name in DESTINATION_NAMES
            or name.endswith(DESTINATION_SUFFIXES)
        )
    ]


def option_url(cls: type[TokenProvider] | None, options: Mapping[str, Any], name: str) -> str:
    """The URL an option resolves to: its value, else its field's default ("" if the
    type has no such option)."""
    if cls is None or name not in cls.Options.base_fields:
        return ""
    value = options.get(name)
    if value in (None, ""):
        initial = cls.Options.base_fields[name].initial
        value = initial() if callable(initial) else initial
    return str(value or "")


def destinations(
    cls: type[TokenProvider] | None, base_url: str, options: Mapping[str, Any]
) -> dict[str, str]:
    """Field name (``base_url``, ``auth.<option>``) to the URL a credential or a token
    made with it is sent to, for an integration of type ``cls``."""
    found = {"base_url": base_url} if base_url else {}
    for name in destination_options(cls) if cls is not None else []:
        url = option_url(cls, options, name)
        if url:
            found[f"auth.{name}"] = url
    return found


def credential_destination_errors(
    old: Integration | None, new_values: Mapping[str, Any], entered: Collection[str]
) -> dict[str, str]:
    """Fields whose change would send a kept secret elsewhere, with the message to show.

    ``old`` is the stored integration (None or unsaved when adding: nothing is kept);
    ``new_values`` holds the new ``base_url``, ``auth_type`` and plain ``auth_config``;
    ``entered`` names the secrets typed or generated in this change. Keys are
    ``base_url`` and ``auth.<option>``, as ``validation`` names fields.
    """
    if old is None or old.pk is None:
        return {}
    cls = PROVIDERS.get(str(new_values.get("auth_type") or old.auth_type))
    if cls is None:
        return {}
    try:
        stored = set(old.secret_names())
    except SecretDecryptionError:
        return {}  # nothing can be kept: the form asks for every secret again
    # A device signer (KMS, PKCS#11) is a credential without a secret to type: whoever
    # points the integration elsewhere would get JWTs signed by the organisation's key.
    # It must be stated again (the configuration file) or moved by someone who may
    # manage signing keys (the admin), both of which put SIGNER_FIELD in ``entered``.
    if (old.auth_config or {}).get(SIGNER_FIELD) and SIGNER_FIELD in cls.Options.base_fields:
        stored.add(SIGNER_FIELD)
    kept = sorted((stored & {*cls.secret_fields, SIGNER_FIELD}) - set(entered))
    if not kept:
        return {}
    names = " and ".join(name.replace("_", " ") for name in kept)
    message = (
        f"This would send the stored {names} to another server: enter "
        f"{'it' if len(kept) == 1 else 'them'} again to confirm, or keep the previous address."
    )
    # Servers that already receive the credential (or a token made with it).
    known = {
        origin(url)
        for url in destinations(
            PROVIDERS.get(old.auth_type), old.base_url, old.auth_config or {}
        ).values()
    }
    new = destinations(
        cls, str(new_values.get("base_url") or ""), new_values.get("auth_config") or {}
    )
    return {field: message for field, url in new.items() if origin(url) not in known}
