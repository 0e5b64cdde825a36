"""The read-only panels of an integration's change page, rendered from templates under
``admin/integrations/integration/panels/`` (autoescaped).

Secrets are write-only (security.md #29): a panel says whether each one is set and, for
editors, a fingerprint that identifies it; never its value.
"""

from __future__ import annotations

import json
import logging

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from ..exceptions import IntegrationError, SecretDecryptionError
from ..forms import fingerprint, option_label
from ..models import Integration
from ..tokens import PROVIDERS, public_key_info

logger = logging.getLogger(__name__)
RECENT_CALLS = 20
TEMPLATES = "admin/integrations/integration/panels/"


def render(template: str, context: dict[str, object]) -> SafeString:
    return SafeString(render_to_string(TEMPLATES + template, context))


def auth_options(obj: Integration) -> SafeString:
    return render(
        "auth_options.html", {"options_json": json.dumps(obj.auth_config, indent=2, sort_keys=True)}
    )


def secrets_set(obj: Integration) -> SafeString | str:
    """For viewers: whether each secret is set, nothing about its value."""
    cls = PROVIDERS.get(obj.auth_type)
    if cls is None:
        return "–"
    try:
        stored = set(obj.secret_names())
    except SecretDecryptionError:
        return render("secrets.html", {"problem": "cannot be decrypted with the configured keys"})
    states = [
        (option_label(cls, name), "set" if name in stored else "not set")
        for name in cls.secret_fields
    ]
    return render("secrets.html", {"secrets": states})


def secret_fingerprints(obj: Integration) -> SafeString | str:
    """For editors: 'set' plus a fingerprint that identifies, never reveals."""
    cls = PROVIDERS.get(obj.auth_type)
    if cls is None:
        return "–"
    try:
        stored = obj.get_secrets()
    except SecretDecryptionError:
        problem = "cannot be decrypted with the configured keys: enter them again"
        return render("secrets.html", {"problem": problem})
    states = [
        (
            option_label(cls, name),
            f"set · {fingerprint(cls, obj.auth_config, name, stored[name])}"
            if name in stored
            else "not set",
        )
        for name in cls.secret_fields
    ]
    return render("secrets.html", {"secrets": states})


def public_key(obj: Integration) -> SafeString:
    try:
        info = public_key_info(obj)
    except IntegrationError:
        info = None
    except Exception:  # noqa: BLE001  (a stored option the Options form crashes on)
        logger.exception("reading the public key of %s failed", obj.slug)
        info = None
    jwk_json = json.dumps(info["jwk"], indent=2) if info else ""
    return render("public_key.html", {"info": info, "jwk_json": jwk_json})


def recent_calls(obj: Integration) -> SafeString:
    """The integration's newest calls (one query) and a link to all of them."""
    rows = list(obj.call_logs.order_by("-created_at", "-id")[:RECENT_CALLS])
    link = reverse("admin:integrations_calllog_changelist") + f"?integration={obj.slug}"
    return render("recent_calls.html", {"rows": rows, "all_calls_url": link})
