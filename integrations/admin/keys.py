"""The integration admin's signing keys (docs/key-custody.md): a read-only panel on the
change page (kid, state, algorithm, thumbprint, public PEM and JWK of each key) and a
page that rolls them over: add a next key, promote it, drop retired keys.

Changing which key signs or is published reaches the remote's trust in this app: the
actions need ``integrations.manage_signing_keys`` and a CSRF-checked POST
(security.md #28). Nothing here shows private material: keys are listed from their
public halves (security.md #33).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.safestring import SafeString

from .. import keypairs, signingkeys
from ..exceptions import IntegrationError
from ..models import Integration, KeyState
from ..signingkeys import KeyInfo

PERMISSION = "manage_signing_keys"
TEMPLATES = "admin/integrations/integration/"
ACTIONS = ("add_next", "promote", "drop_retired", "drop_next")


def listed(keys: list[KeyInfo]) -> list[dict[str, Any]]:
    return [{**key.as_dict(), "jwk_json": json.dumps(key.jwk, indent=2)} for key in keys]


def read_keys(obj: Integration) -> tuple[list[KeyInfo], str]:
    """The integration's keys, or why they cannot be listed (a message without secrets)."""
    try:
        signingkeys.rollover_type(obj)
    except IntegrationError as exc:
        return [], str(exc).split(": ", 1)[-1]
    try:
        return signingkeys.all_keys(obj), ""
    except IntegrationError as exc:
        return [], str(exc)


def jwks_url(obj: Integration) -> str:
    """The JWKS view's URL, when the site includes ``integrations.urls``."""
    try:
        return reverse("integrations:jwks", args=[obj.slug])
    except NoReverseMatch:
        return ""


class SigningKeyViews(admin.ModelAdmin):  # type: ignore[type-arg]
    """The keys panel and page and their URLs; the integration admin builds on it."""

    def has_manage_signing_keys_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"{self.opts.app_label}.{PERMISSION}"))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/keys/",
                self.admin_site.admin_view(self.keys_view),
                name="integrations_integration_keys",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="signing keys")
    def signing_keys_panel(self, obj: Integration) -> SafeString:
        keys, problem = read_keys(obj)
        page = reverse("admin:integrations_integration_keys", args=[obj.pk])
        context = {"keys": listed(keys), "problem": problem, "keys_url": page}
        return SafeString(render_to_string(TEMPLATES + "panels/signing_keys.html", context))

    def keys_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_manage_signing_keys_permission(request):
                raise PermissionDenied
            self.act(request, obj, request.POST.get("action", ""))
            return HttpResponseRedirect(request.path)
        keys, problem = read_keys(obj)
        states = {key.state for key in keys}
        usual = configured_kind(obj)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Signing keys: {obj}",
            "opts": self.opts,
            "original": obj,
            "keys": listed(keys),
            "problem": problem,
            "jwks_url": jwks_url(obj),
            "can_manage": self.has_manage_signing_keys_permission(request) and not problem,
            # As on the change page: public halves for those who may edit (security.md #29).
            "show_public": self.has_change_permission(request, obj),
            "has_next": KeyState.NEXT in states,
            "has_retired": KeyState.RETIRED in states,
            "kinds": [(kind, label, kind == usual) for kind, label in keypairs.kind_choices()],
        }
        return TemplateResponse(request, TEMPLATES + "keys.html", context)

    def act(self, request: HttpRequest, obj: Integration, action: str) -> None:
        """Run one rollover step and say what it did (or why not) as a message."""
        try:
            if action == "add_next":
                key, turned_on = signingkeys.add_next(obj, kind=request.POST.get("kind") or None)
                note = " send_kid is now on: tokens name their key." if turned_on else ""
                text = (
                    f"Added next key {key.kid} ({key.algorithm}): published in the JWKS, not "
                    f"signing yet. Register its public key with the provider (or let it fetch "
                    f"the JWKS), wait for the provider to have it, then promote it.{note}"
                )
            elif action == "promote":
                active, retired = signingkeys.promote(obj)
                text = (
                    f"{active.kid} is now active and signs; {retired.kid} is retired and still "
                    "published. Drop it once its tokens have expired and the provider has "
                    "fetched the JWKS again."
                )
            elif action == "drop_retired":
                kids = signingkeys.drop_retired(obj)
                text = f"Dropped retired key(s) {', '.join(kids)}." if kids else "No retired keys."
            elif action == "drop_next":
                text = f"Dropped next key {signingkeys.drop_next(obj)}."
            else:
                raise PermissionDenied
        except IntegrationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, text, messages.SUCCESS)


def configured_kind(obj: Integration) -> str:
    """The key type usually generated for the integration's algorithm ("" if none)."""
    try:
        return signingkeys.usual_kind(signingkeys.configured_algorithm(obj))
    except IntegrationError:
        return ""
