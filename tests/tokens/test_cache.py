"""The token cache under load and change: single-flight across 50 threads, expiry in
the middle of a run, the 401 retry for grant and exchange flows, a dead lock holder,
cache keys that follow admin edits, and parsed signing keys cached by material."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from integrations import services
from integrations.models import CallLog, Integration
from integrations.tokens import cache as cache_module
from integrations.tokens.base import Token
from integrations.tokens.cache import token_cache
from integrations.tokens.signing import _load_cached, load_signing_key
from tests import jose
from tests.keys import HMAC_SECRET, key_for, public_pem, rsa_pem
from tests.loopback import Reply
from tests.tokens.emulators import AuthServer

pytestmark = pytest.mark.django_db


def grant_setup(server, make_integration, **auth_options):
    auth = AuthServer(
        server, algorithm="RS256", rules=[], **auth_options
    )
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_grant",
        auth_config={"algorithm": "RS256", "claims": {"iss": "shop"}, "token_url": auth.url},
        secrets={"key": rsa_pem()},
        log_calls="none",
    )
    return auth


def exchange_setup(server, make_integration, **auth_options):
    auth = AuthServer(
        server,
        algorithm="HS256",
        rules=[],
        path="/exchange",
        answer=lambda token, ttl: {"token": token, "expires_in": ttl},
        **auth_options,
    )
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="jwt_exchange",
        auth_config={"algorithm": "HS256", "claims": {"iss": "shop"}, "exchange_url": auth.url},
        log_calls="none",
    )
    return auth


SETUPS = {"jwt_grant": grant_setup, "jwt_exchange": exchange_setup}


def fire(threads: int, call) -> list:
    """Run ``call`` in ``threads`` threads released at once; return results in order."""
    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # surfaced through the results
            results[index] = exc

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


@pytest.mark.parametrize("flow", SETUPS)
def test_fifty_threads_on_an_expired_token_cause_one_mint(server, make_integration, flow):
    """security.md #22: 50 threads hitting an expired token trigger exactly one token request
    (the endpoint sleeps, so they really overlap); all use the new token."""
    auth = SETUPS[flow](server, make_integration, delay=0.3)
    session = services.get_session("billing")
    expired = Token("expired-token", expires_at=time.time() - 1, obtained_at=time.time() - 3600)
    token_cache._local[session.provider.cache_key] = expired
    results = fire(50, lambda: session.get("resource").status_code)
    assert results == [200] * 50
    assert auth.mints == 1
    sent = {r.bearer for r in server.calls("GET", "/api/resource")}
    assert sent == {auth.issued[0]}


def test_a_token_expiring_mid_run_is_replaced_once(server, make_integration, monkeypatch):
    """security.md #21: calls reuse the token until the refresh margin before expiry, then
    one new token is obtained and used for the rest of the run."""
    auth = grant_setup(server, make_integration, expires_in=3600)
    sent = []
    for call in range(5):
        if call == 2:
            # Past exp − margin for the first token, well before the second one's.
            auth.expires_in = 7200
            offset = 3600 - 30
            monkeypatch.setattr(cache_module, "clock", lambda: time.time() + offset)
        assert services.request("billing", "GET", "resource").status_code == 200
        sent.append(server.calls("GET", "/api/resource")[-1].bearer)
    assert auth.mints == 2
    assert sent == [auth.issued[0]] * 2 + [auth.issued[1]] * 3


@pytest.mark.parametrize("flow", SETUPS)
def test_401_obtains_a_fresh_token_and_retries_once(server, make_integration, flow):
    """security.md #24: the remote revokes the cached token; the 401 drops it, one new token
    is obtained (different bytes) and the call retried once, logged as 2 attempts."""
    auth = SETUPS[flow](server, make_integration)
    Integration.objects.filter(slug="billing").update(log_calls="all")
    assert services.request("billing", "GET", "resource").status_code == 200
    auth.issued.remove(first := auth.issued[0])  # revoked server-side
    services._sessions.clear()
    assert services.request("billing", "GET", "resource").status_code == 200
    assert len(server.calls("POST", auth.path)) == 2 and auth.issued[0] != first
    sent = [r.bearer for r in server.calls("GET", "/api/resource")]
    assert sent == [first, first, auth.issued[0]]
    assert CallLog.objects.order_by("id").last().attempts == 2


@pytest.mark.parametrize("flow", SETUPS)
def test_second_401_is_returned_not_looped(server, make_integration, flow):
    """security.md #24: an API that refuses every token gets exactly two attempts, each with
    a different token, and the second 401 is returned."""
    auth = SETUPS[flow](server, make_integration)
    server.route("GET", "/api/resource", lambda r: Reply(401, {"error": "invalid_token"}))
    response = services.request("billing", "GET", "resource")
    assert response.status_code == 401
    sent = [r.bearer for r in server.calls("GET", "/api/resource")]
    assert len(sent) == 2 and sent[0] != sent[1]
    assert auth.mints == 2


def test_refused_jwt_bearer_token_without_jti_is_still_replaced_by_different_bytes(
    server, make_integration
):
    """reference.md: a token minted to replace a refused one differs from it, even in the same
    second with no jti configured (same claims would sign to the same bytes)."""
    server.route("GET", "/api/x", lambda r: Reply(401))
    make_integration(
        base_url=f"{server.url}/api/", auth_config={"algorithm": "HS256", "claims": {"iss": "a"}}
    )
    services.request("billing", "GET", "x")
    first, second = (r.bearer for r in server.requests)
    assert first != second
    _, claims = jose.verify(second, HMAC_SECRET.encode(), "HS256")
    assert claims["iss"] == "a"


@pytest.mark.parametrize("change", ["claims", "key"])
def test_an_admin_edit_takes_effect_at_once(server, make_integration, change):
    """security.md #21: the cache key carries the auth fingerprint, so a changed key or claim
    is used on the very next call, not when the old token expires."""
    server.route("GET", "/api/x", lambda r: Reply(200))
    integration = make_integration(
        base_url=f"{server.url}/api/",
        auth_config={"algorithm": "RS256", "claims": {"iss": "old"}},
        secrets={"key": rsa_pem()},
    )
    services.request("billing", "GET", "x")
    new_key = rsa_pem(3072)
    if change == "claims":
        integration.auth_config = {"algorithm": "RS256", "claims": {"iss": "new"}}
    else:
        integration.set_secrets({"key": new_key})
    integration.full_clean()
    integration.save()
    services.request("billing", "GET", "x")
    token = server.requests[-1].bearer
    assert len([key for key in token_cache._local if ":billing:" in key]) == 1  # old one dropped
    verify_with = public_pem(rsa_pem() if change == "claims" else new_key)
    _, claims = jose.verify(token, verify_with, "RS256")
    assert claims["iss"] == ("new" if change == "claims" else "old")


@override_settings(INTEGRATIONS_TOKEN_LOCK_TIMEOUT=1)
def test_a_dead_lock_holder_does_not_block_forever(server, make_integration):
    """security.md #23: a refresh lock left by a process that died expires after its TTL and
    the next caller obtains the token itself."""
    auth = grant_setup(server, make_integration)
    session = services.get_session("billing")
    assert cache.add(f"{session.provider.cache_key}:lock", "dead-process", timeout=1)
    assert session.get("resource").status_code == 200
    assert auth.mints == 1


def test_a_waiter_takes_the_token_the_lock_holder_wrote(server, make_integration):
    """security.md #23: while another process holds the lock, callers wait and then use the
    token it shares instead of requesting their own."""
    auth = grant_setup(server, make_integration)
    session = services.get_session("billing")
    key = session.provider.cache_key
    assert cache.add(f"{key}:lock", "other-process", timeout=30)
    shared = Token("at-shared-by-another-process", time.time() + 3600)
    auth.issued.append(shared.value)

    def other_process_finishes() -> None:
        time.sleep(0.3)
        token_cache._write_shared(key, shared, 60)
        cache.delete(f"{key}:lock")

    threading.Thread(target=other_process_finishes).start()
    assert session.get("resource").status_code == 200
    assert server.calls("GET", "/api/resource")[-1].bearer == shared.value
    assert not server.calls("POST", "/token")


def test_shared_cache_holds_tokens_encrypted(server, make_integration):
    """security.md #26: the token in Django's cache is sealed (AES-GCM), not readable."""
    auth = grant_setup(server, make_integration)
    session = services.get_session("billing")
    session.get("resource")
    stored = cache.get(session.provider.cache_key)
    assert stored.startswith("enc:v1:") and auth.issued[0] not in stored


def test_short_lived_tokens_are_reused_for_half_their_life():
    """A token living less than the refresh margin is still reused (for half its life)
    instead of being replaced on every call."""
    now = time.time()
    token = Token("t", expires_at=now + 30, obtained_at=now)
    assert token.fresh(60, now + 10)
    assert not token.fresh(60, now + 16)
    long_lived = Token("t", expires_at=now + 3600, obtained_at=now)
    assert long_lived.fresh(60, now + 3539) and not long_lived.fresh(60, now + 3541)


def test_parsed_signing_keys_are_cached_by_material():
    """Parsing a PEM is slow: the same material returns the same parsed key object, a
    changed key a new one (the cache is keyed by a digest of the material)."""
    before = _load_cached.cache_info()
    first = load_signing_key("RS256", key_for("RS256"))
    again = load_signing_key("RS256", key_for("RS256"))
    assert first is again
    assert _load_cached.cache_info().hits >= before.hits + 1
    other = load_signing_key("RS256", rsa_pem(3072))
    assert other is not first and other.key_size == 3072
