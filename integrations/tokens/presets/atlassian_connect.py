"""``atlassian_connect``: an Atlassian Connect app calling the product it is installed
in (preset of ``jwt_bearer``, one token per request).

Atlassian's rules: HS256 with the installation's shared secret, iss = the app key, a
``qsh`` claim binding the token to the request's method, path and query, exp about 3
minutes ahead, sent as ``Authorization: JWT <token>``. Because qsh covers the request,
tokens are not cached (``cacheable`` False).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from django import forms

from ..base import FlowOptions, Token
from ..bearer import BearerProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions

if TYPE_CHECKING:
    import requests


def _encode(text: str) -> str:
    # RFC 3986 percent-encoding: space as %20, "~" left alone, everything else reserved.
    return quote(text, safe="~")


def query_string_hash(method: str, url: str, base_url: str) -> str:
    """Atlassian's qsh: SHA-256 of ``METHOD&path&query`` in canonical form; the path is
    relative to the product's base URL (Confluence's ``/wiki`` is not part of it)."""
    parts = urlsplit(url)
    path = parts.path
    context = urlsplit(base_url).path.rstrip("/")
    if context and path.startswith(context):
        path = path[len(context) :]
    path = path.rstrip("/") or "/"
    path = path.replace("&", "%26")
    grouped: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "jwt":
            grouped.setdefault(_encode(name), []).append(_encode(value))
    query = "&".join(
        f"{name}={','.join(sorted(values))}" for name, values in sorted(grouped.items())
    )
    canonical = f"{method.upper()}&{path}&{query}"
    return hashlib.sha256(canonical.encode()).hexdigest()


class AtlassianConnectProvider(Preset, BearerProvider):
    type = "atlassian_connect"
    label = "Atlassian Connect app"
    signing_key = PresetKey(
        "HS256",
        "From the installed lifecycle callback of this installation.",
        field="shared_secret",
        label="Shared secret",
    )
    lifetime = Lifetime(initial=170, cap=180)
    cacheable = False
    delivery = "a new JWT per request (qsh covers it) in Authorization: JWT <token>"

    class Options(PresetOptions):
        app_key = forms.CharField(help_text="The app's key from its descriptor.")

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        claims = {"iss": options["app_key"]}
        return {"claims": claims, "header_name": "Authorization", "scheme": "JWT"}

    def claims(self, request: requests.PreparedRequest | None = None) -> dict[str, Any]:
        claims = super().claims(request)
        if request is not None:
            claims["qsh"] = query_string_hash(
                request.method or "GET", request.url or "", self.base_url
            )
        return claims

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers["Authorization"] = f"JWT {token.value}"
