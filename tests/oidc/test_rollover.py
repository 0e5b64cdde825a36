"""Zero-downtime key rollover against node-oidc-provider (docs/key-custody.md).

The ``rollover`` client is registered by ``jwks_uri``: the provider fetches the client's
keys from a file this test rewrites with the app's own JWKS view
(``integrations/<slug>/jwks.json``), as a provider fetching that URL would see it.
node-oidc-provider caches a fetched JWKS (at least 60 s, longer with max-age) and, once
that cache is stale, refetches it when an assertion names a kid it does not hold.

A loop of client_assertion token requests runs through the whole rollover recipe: add
next (published, send_kid on) -> the provider's cache time passes (the test expires the
provider's cached copy instead of waiting a minute) -> promote (the new kid makes the
provider refetch) -> drop retired. Not one request fails. A second test shows why the
wait is part of the recipe: promoting while the provider's copy is fresh fails.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.test import Client

from integrations.http.session import create_session
from integrations.models import Integration
from integrations.tokens import build_provider
from integrations.tokens.base import TokenProvider
from tests.commands.helpers import manage
from tests.oidc.server import OIDCProvider

pytestmark = pytest.mark.django_db
SLUG = "rollover"


@pytest.fixture
def integration(oidc: OIDCProvider, make_integration: Any) -> Integration:
    """The app's client_assertion integration for the provider's ``rollover`` client,
    with the key the provider registered (kid k1), its JWKS published."""
    made: Integration = make_integration(
        SLUG,
        base_url=oidc.url + "/resource/",
        ca_bundle=oidc.ca_path,
        auth_type="client_assertion",
        auth_config={
            "algorithm": "ES256",
            "client_id": "rollover",
            "token_url": oidc.token_url,
            "scope": "api:read",
            "key_id": "k1",
        },
        secrets={"key": oidc.assertion_keys["rollover"]},
    )
    publish(oidc)
    provider_cache(oidc, "refresh")
    return made


def publish(oidc: OIDCProvider) -> list[str]:
    """Write the app's JWKS where the provider fetches the client's jwks_uri; its kids."""
    response = Client().get(f"/integrations/{SLUG}/jwks.json")
    assert response.status_code == 200
    (oidc.jwks_dir / "rollover.json").write_bytes(response.content)
    return [key["kid"] for key in response.json()["keys"]]


def provider_cache(oidc: OIDCProvider, action: str = "") -> int:
    """Expire or refresh the provider's copy of the client's JWKS; its fetches so far."""
    answer = requests.get(
        f"{oidc.url}/test-jwks-cache/rollover",
        params={"action": action},
        verify=oidc.ca_path,
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json()["fetches"].get("rollover", 0))


def rebuilt() -> TokenProvider:
    """The provider as a session rebuilt after the change would have it."""
    return build_provider(Integration.objects.get(slug=SLUG))


@dataclass
class TokenLoop:
    """Token requests, one after another on a thread, each with a fresh assertion
    (no token cache), by the provider of the moment; results by phase."""

    oidc: OIDCProvider
    provider: TokenProvider
    phase: str = "k1 active"
    results: list[tuple[str, bool, str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        http = create_session(ca_bundle=self.oidc.ca_path)
        while not self.stop.is_set():
            provider, phase = self.provider, self.phase
            try:
                token = provider.obtain(http, None)
                self.results.append((phase, True, token.kid, ""))
            except Exception as exc:  # noqa: BLE001  (a failure is what this counts)
                self.results.append((phase, False, "", str(exc)))
            time.sleep(0.01)

    def enter(self, phase: str, provider: TokenProvider | None = None, at_least: int = 5) -> None:
        """Switch to ``phase`` and wait until it has ``at_least`` results."""
        if provider is not None:
            self.provider = provider
        self.phase = phase
        deadline = time.monotonic() + 30
        while sum(1 for r in self.results if r[0] == phase) < at_least:
            assert time.monotonic() < deadline, f"no token requests in phase {phase!r}"
            time.sleep(0.02)

    def of(self, phase: str) -> list[tuple[str, bool, str, str]]:
        return [r for r in self.results if r[0] == phase]


def test_rollover_with_zero_failed_token_requests(oidc: OIDCProvider, integration: Any) -> None:
    loop = TokenLoop(oidc, rebuilt())
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        loop.enter("k1 active")
        added = manage("integrations_keys", SLUG, "--add-next", "--kid", "k2")
        assert added.code == 0, added.err
        assert publish(oidc) == ["k1", "k2"]
        loop.enter("k2 published", rebuilt())
        # The recipe's wait: the provider's cache time passes (expired here, not waited).
        fetches = provider_cache(oidc, "expire")
        loop.enter("cache time passed")
        promoted = manage("integrations_keys", SLUG, "--promote")
        assert promoted.code == 0, promoted.err
        assert publish(oidc) == ["k2", "k1"]
        loop.enter("k2 active", rebuilt())
        assert provider_cache(oidc) > fetches  # the unknown kid made it fetch the JWKS
        dropped = manage("integrations_keys", SLUG, "--drop-retired")
        assert dropped.code == 0, dropped.err
        assert publish(oidc) == ["k2"]
        provider_cache(oidc, "expire")
        loop.enter("k1 dropped")
    finally:
        loop.stop.set()
        thread.join(10)
    failures = [r for r in loop.results if not r[1]]
    assert not failures, failures[:3]
    assert {r[2] for r in loop.of("k1 active") + loop.of("cache time passed")} == {"k1"}
    assert {r[2] for r in loop.of("k2 active") + loop.of("k1 dropped")} == {"k2"}
    assert len(loop.results) >= 25
    # The retired key is really gone from the provider once it has fetched again.
    provider_cache(oidc, "refresh")
    old = provider_with_key(oidc.assertion_keys["rollover"], "k1")
    with pytest.raises(Exception, match="invalid_client"):
        old.obtain(create_session(ca_bundle=oidc.ca_path), None)


def provider_with_key(pem: str, kid: str) -> TokenProvider:
    integration = Integration.objects.get(slug=SLUG)
    integration.auth_config = {**integration.auth_config, "key_id": kid}
    integration.set_secrets({"key": pem})
    return build_provider(integration)


def test_promoting_before_the_provider_refetches_fails(
    oidc: OIDCProvider, integration: Any
) -> None:
    """Why the recipe waits: while the provider's copy of the JWKS is fresh it does not
    refetch, so a token signed by the new key is refused until its cache time passes."""
    assert manage("integrations_keys", SLUG, "--add-next").code == 0
    publish(oidc)
    assert manage("integrations_keys", SLUG, "--promote").code == 0
    http = create_session(ca_bundle=oidc.ca_path)
    with pytest.raises(Exception, match="invalid_client"):
        rebuilt().obtain(http, None)
    provider_cache(oidc, "expire")
    assert rebuilt().obtain(http, None).value
