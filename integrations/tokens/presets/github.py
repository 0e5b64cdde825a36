"""``github_app``: a GitHub App acting as one installation (preset of ``jwt_exchange``).

GitHub's rules: RS256, iss = the app's client ID or app ID, iat backdated 60 s for
clock drift, exp at most 10 minutes ahead. The JWT is exchanged at
``POST {base_url}/app/installations/{installation_id}/access_tokens`` for
``{token, expires_at}`` (an hour), which then goes out as Bearer.

The app JWT names the app, not an installation, so one app serving 10,000 accounts
signs it once and reuses it for every installation's exchange (``AppJWTs``, for half its
lifetime). The installation token, the credential the API sees, stays per account
(security.md #31): only the app's own credential is shared, keyed by the integration
and everything the JWT is made of.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from ...exceptions import TokenEndpointError, TokenError
from ..base import FlowOptions, Token
from ..exchange import ExchangeProvider
from ..preset import Lifetime, Preset, PresetKey, PresetOptions

if TYPE_CHECKING:
    import requests


# Integrations whose app JWT a process keeps; far more GitHub Apps than one deployment has.
APP_JWTS_SIZE = 256


class AppJWTs:
    """Signed app JWTs by integration, each reused for half its lifetime; one thread
    signs while the others wait for its JWT."""

    def __init__(self) -> None:
        self._jwts: OrderedDict[str, tuple[str, dict[str, Any], float]] = OrderedDict()
        # The JWT the exchange last refused, by key: its replacement must differ.
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A lock held by another thread at fork time would never be released here.
        self._lock = threading.Lock()

    @sensitive_variables("jwt")
    def get(
        self, key: str, mint: Callable[[], tuple[str, dict[str, Any]]]
    ) -> tuple[str, dict[str, Any]]:
        with self._lock:
            cached = self._jwts.get(key)
            if cached is None or time.time() >= cached[2]:
                jwt, claims = mint()
                if jwt == self._refused.pop(key, None):
                    # Signed in the same second from the same claims: the provider
                    # adds a jti to its second JWT in a row (JWTProvider.mint).
                    jwt, claims = mint()
                now = time.time()
                cached = (jwt, claims, now + (claims["exp"] - now) / 2)
                self._jwts[key] = cached
            self._jwts.move_to_end(key)
            while len(self._jwts) > APP_JWTS_SIZE:
                self._jwts.popitem(last=False)
            return cached[0], dict(cached[1])

    def drop(self, key: str) -> None:
        """Forget the JWT the exchange refused: the next one is signed anew, and differs."""
        with self._lock:
            cached = self._jwts.pop(key, None)
            if cached is not None:
                self._refused[key] = cached[0]
                while len(self._refused) > APP_JWTS_SIZE:
                    self._refused.pop(next(iter(self._refused)))

    def clear(self) -> None:
        with self._lock:
            self._jwts.clear()
            self._refused.clear()


app_jwts = AppJWTs()


class GitHubAppProvider(Preset, ExchangeProvider):
    type = "github_app"
    account_options = ("installation_id",)
    account_required = ("installation_id",)
    label = "GitHub App installation"
    signing_key = PresetKey("RS256", "The app's PEM private key (RSA).")
    # GitHub refuses "'exp' is too far in the future" past now + 600; the default leaves
    # a minute for a host clock that runs fast.
    lifetime = Lifetime(initial=540, cap=600)
    clock_skew = 60
    delivery = (
        "sent as Bearer to POST {base_url}/app/installations/{installation_id}/access_tokens; "
        "the installation token is sent as Bearer"
    )

    class Options(PresetOptions):
        app_id = forms.CharField(help_text="The app's client ID (recommended) or numeric app ID.")
        # Optional: an app serving many installations gives each account its own.
        installation_id = forms.RegexField(
            regex=r"^[0-9]+$",
            required=False,
            help_text="From the installation's settings URL; blank when each account has one.",
        )

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        # Without an installation the provider still mints the app's own JWT (listing
        # installations); only an installation token needs one.
        self.installation_id = str(options.get("installation_id") or "")
        path = f"/app/installations/{self.installation_id}/access_tokens"
        return {
            "claims": {"iss": str(options["app_id"])},
            "exchange_url": self.base_url.rstrip("/") + path,
            "exchange_method": "POST",
            "token_field": "token",
            "expires_field": "expires_at",
        }

    @property
    def app_jwt_key(self) -> str:
        """The integration (not the account: an account's view of it names its own),
        its auth fingerprint (key and options) and the JWT's claims and lifetime."""
        integration = getattr(self.integration, "integration", self.integration)
        options = self.options
        material = json.dumps(
            [
                integration.auth_fingerprint,
                options.get("claims"),
                options.get("lifetime"),
                options.get("clock_skew"),
            ],
            sort_keys=True,
            default=str,
        )
        digest = hashlib.sha256(material.encode()).hexdigest()[:16]
        return f"{integration.slug}:{digest}"

    @sensitive_variables()
    def credential(self, request: requests.PreparedRequest | None) -> tuple[str, dict[str, Any]]:
        return app_jwts.get(self.app_jwt_key, lambda: self.mint(request))

    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        if not self.installation_id:
            raise TokenError(
                f"{self.slug}: installation_id is required to call without an account "
                "(or give each account one)"
            )
        try:
            return super().obtain(http, request)
        except TokenEndpointError as exc:
            if exc.status_code == 401:  # the app JWT itself was refused: sign anew next time
                app_jwts.drop(self.app_jwt_key)
            raise
